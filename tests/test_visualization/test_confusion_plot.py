import numpy as np
import pytest

from rca_mm.visualization.confusion_plot import (normalize_rows,
                                                 plot_confusion_matrix)

CLASSES = ['background', 'cat', 'dog']
# Rows: ground truth; columns: prediction, then predicted ignore.
MATRIX = np.array([[60, 10, 10, 20], [5, 15, 0, 0], [0, 0, 0, 0]])


def test_normalize_rows():
    rows = normalize_rows(MATRIX)
    np.testing.assert_allclose(rows[0], [0.6, 0.1, 0.1, 0.2])
    np.testing.assert_allclose(rows[1], [0.25, 0.75, 0, 0])
    assert np.isnan(rows[2]).all()  # a class absent from the ground truth


def test_plot_draws_row_percentages_and_names():
    fig = plot_confusion_matrix(MATRIX, CLASSES, title='T')
    ax = fig.axes[0]
    drawn = ax.images[0].get_array()
    np.testing.assert_allclose(drawn[:2].filled(np.nan),
                               [[60, 10, 10, 20], [25, 75, 0, 0]])
    assert drawn.mask[2].all()
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES + ['ignore']
    assert [t.get_text() for t in ax.get_yticklabels()
            ] == ['background', 'cat', 'dog (absent)']
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(['60', '10', '10', '20', '25', '75', '0', '0'])
    assert ax.get_title() == 'T'


def test_plot_without_ignore_column_and_bad_shape():
    fig = plot_confusion_matrix(
        MATRIX, CLASSES, with_ignore=False, with_values=False)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (3, 3)
    # Still a share of all the row's pixels (the ignore pixels included).
    np.testing.assert_allclose(ax.images[0].get_array()[0], [60, 10, 10])
    assert not ax.texts
    with pytest.raises(ValueError, match='does not fit 2 class names'):
        plot_confusion_matrix(MATRIX, CLASSES[:2])
