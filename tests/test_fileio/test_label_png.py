"""Label PNGs: the stage-1 writer and the reader."""
import numpy as np
import pytest
from PIL import Image

from rca_mm.fileio import read_label_png, save_label_png


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.png'):
        read_label_png(str(tmp_path / 'nope.png'))
    rgb = tmp_path / 'rgb.png'
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match='mode RGB'):
        read_label_png(str(rgb))
    grey = tmp_path / 'grey.png'
    Image.fromarray(np.full((2, 2), 255, np.uint8)).save(grey)
    np.testing.assert_array_equal(read_label_png(str(grey)), 255)
    with pytest.raises(ValueError, match=r"cannot write '.*x\.png'"):
        save_label_png(np.zeros((2, 2, 1), np.uint8), str(tmp_path / 'x.png'))
    with pytest.raises(ValueError, match='0..255'):
        save_label_png(np.full((2, 2), 256), str(tmp_path / 'x.png'))
    assert not (tmp_path / 'x.png').exists()

