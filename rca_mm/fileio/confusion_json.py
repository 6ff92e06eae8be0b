"""The confusion-matrix file of a pseudo-label export.

``PseudoLabelMetric`` writes the matrix it scores the pseudo labels with
(summed over the scored images) to ``<output_dir>/confusion_matrix.json``,
atomically, once per export; ``tools/analysis_tools/confusion_matrix.py``
draws it.

.. code:: text

    {"rows": "ground truth",
     "columns": "prediction, then predicted ignore",
     "classes": ["background", "aeroplane", ...],          C names
     "matrix": [[n_00, ..., n_0C],                         C rows of C + 1
                ...]}                                      pixel counts

The layout is that of :func:`rca_mm.evaluation.functional.confusion_matrix`:
entry ``[g, p]`` counts the pixels of ground truth ``g`` predicted ``p``;
the last column counts those the pseudo label left at 255 (ground-truth 255
pixels are not counted). Each row is written on a line of its own.
"""
import json
from typing import List, Sequence, Tuple

import numpy as np

from .atomic import atomic_open

#: The file name of the matrix under a pseudo-label export's directory.
CONFUSION_MATRIX_FILE = 'confusion_matrix.json'


def save_confusion_matrix(path: str, matrix: np.ndarray,
                          classes: Sequence[str]) -> None:
    """Write a ``(C, C + 1)`` confusion matrix and its class names.

    Args:
        path (str): the JSON file; written atomically.
        matrix (np.ndarray): ``(C, C + 1)`` integer pixel counts.
        classes (Sequence[str]): the C class names, background first.

    Raises:
        ValueError: the matrix is not ``(C, C + 1)`` for the C names.
    """
    matrix = np.asarray(matrix)
    classes = [str(c) for c in classes]
    if matrix.shape != (len(classes), len(classes) + 1):
        raise ValueError(
            f'save_confusion_matrix({path!r}): expected a ({len(classes)}, '
            f'{len(classes) + 1}) matrix for {len(classes)} classes (last '
            f'column: predicted ignore), got shape {matrix.shape}')
    rows = ',\n    '.join(json.dumps([int(v) for v in row]) for row in matrix)
    head = json.dumps(
        dict(
            rows='ground truth',
            columns='prediction, then predicted ignore',
            classes=classes))
    with atomic_open(path, 'w') as f:
        f.write(f'{head[:-1]},\n "matrix": [\n    {rows}]}}\n')


def load_confusion_matrix(path: str) -> Tuple[np.ndarray, List[str]]:
    """Read a file of :func:`save_confusion_matrix`.

    Args:
        path (str): the JSON file.

    Returns:
        tuple: the ``(C, C + 1)`` int64 matrix and the C class names.

    Raises:
        ValueError: the file is not such a matrix (the message names it).
    """
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path!r} is not JSON: {err}') from None
    if not isinstance(data, dict) or not {'classes', 'matrix'} <= set(data):
        raise ValueError(f'{path!r} is not a confusion-matrix file: it needs '
                         '"classes" and "matrix" (written by '
                         'PseudoLabelMetric with an output_dir)')
    classes = [str(c) for c in data['classes']]
    matrix = np.asarray(data['matrix'], dtype=np.int64)
    if matrix.shape != (len(classes), len(classes) + 1):
        raise ValueError(
            f'{path!r}: "matrix" has shape {matrix.shape}, expected '
            f'({len(classes)}, {len(classes) + 1}) for its {len(classes)} '
            'classes (last column: predicted ignore)')
    return matrix, classes
