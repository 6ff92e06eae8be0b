"""Drawing a pseudo-label confusion matrix, normalised per ground-truth row.

The matrix is :func:`rca_mm.evaluation.functional.confusion_matrix`'s
``(C, C + 1)`` layout, as ``PseudoLabelMetric`` saves it
(:mod:`rca_mm.fileio.confusion_json`): rows are ground-truth classes,
columns the predicted classes and, last, "ignore" (pixels the pseudo label
left at 255). Each row is divided by its ground-truth pixels, so a cell is
the share of a class's pixels given each label, and the last column is the
share the pseudo label did not decide.
"""
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix as fractions of its sum.

    Args:
        matrix (np.ndarray): ``(C, C + 1)`` (or any 2-D) pixel counts, rows
            the ground truth.

    Returns:
        np.ndarray: float64 of the same shape; a row without pixels (a
        class absent from the ground truth) is NaN.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    out = np.full(matrix.shape, np.nan)
    np.divide(matrix, sums, out=out, where=sums > 0)
    return out


def plot_confusion_matrix(matrix: np.ndarray,
                          classes: Sequence[str],
                          *,
                          title: str = 'Normalized confusion matrix',
                          cmap: str = 'OrRd',
                          with_ignore: bool = True,
                          with_values: bool = True) -> Figure:
    """Draw a confusion matrix normalised per ground-truth row.

    The cells hold the percentage of the row's ground-truth pixels (written
    in the cell when ``with_values``); an empty row is left blank and its
    class name marked "(absent)". Class names label both axes, the
    predictions on top.

    Args:
        matrix (np.ndarray): ``(C, C + 1)`` pixel counts (last column:
            predicted ignore), or ``(C, C)``.
        classes (Sequence[str]): the C class names, background first.
        title (str): the figure's title. Default: 'Normalized confusion
            matrix'.
        cmap (str): a matplotlib colour map. Default: 'OrRd'.
        with_ignore (bool): draw the "ignore" column of a ``(C, C + 1)``
            matrix. Default: True.
        with_values (bool): write the percentages. Default: True.

    Returns:
        matplotlib.figure.Figure: the figure (one axes, ``fig.axes[0]``,
        whose image holds the drawn percentages), not attached to pyplot.

    Raises:
        ValueError: the matrix does not fit the class names.
    """
    matrix = np.asarray(matrix)
    num = len(classes)
    if matrix.ndim != 2 or matrix.shape[0] != num or matrix.shape[1] not in (
            num, num + 1):
        raise ValueError(
            f'plot_confusion_matrix: a matrix of shape {matrix.shape} does '
            f'not fit {num} class names: expected ({num}, {num + 1}) or '
            f'({num}, {num})')
    percent = normalize_rows(matrix) * 100
    columns = [str(c) for c in classes]
    if matrix.shape[1] == num + 1:
        if with_ignore:
            columns.append('ignore')
        else:
            percent = percent[:, :num]
    rows = [
        str(c) if np.isfinite(percent[i]).any() else f'{c} (absent)'
        for i, c in enumerate(classes)
    ]
    size = 1.0 + 0.45 * len(columns)
    fig = Figure(figsize=(size + 1.5, size), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(
        np.ma.masked_invalid(percent), cmap=cmap, vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='% of row')
    ax.set_xticks(np.arange(len(columns)), labels=columns)
    ax.set_yticks(np.arange(num), labels=rows)
    ax.tick_params(
        axis='x', top=True, labeltop=True, bottom=False, labelbottom=False)
    for label in ax.get_xticklabels():
        label.set(rotation=45, ha='left', rotation_mode='anchor')
    ax.set_xlabel('prediction')
    ax.xaxis.set_label_position('top')
    ax.set_ylabel('ground truth')
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(num + 1) - 0.5, minor=True)
    ax.grid(which='minor', color='white', linewidth=0.8)
    ax.tick_params(which='minor', length=0)
    if with_values:
        fontsize = max(4.0, min(8.0, 160.0 / len(columns)))
        for i, j in zip(*np.nonzero(np.isfinite(percent))):
            value = percent[i, j]
            ax.text(
                j,
                i,
                f'{value:.0f}'
                if value >= 9.5 or value == 0 else f'{value:.1f}',
                ha='center',
                va='center',
                fontsize=fontsize,
                color='white' if value > 60 else 'black')
    ax.set_title(title, pad=12)
    fig.tight_layout()
    return fig
