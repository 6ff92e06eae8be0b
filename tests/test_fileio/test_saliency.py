import numpy as np
import pytest
from PIL import Image

from rca_mm.fileio import read_saliency_map


def test_grey_and_wide_maps(tmp_path):
    grey = np.array([[0, 51], [255, 102]], np.uint8)
    Image.fromarray(grey).save(tmp_path / 'g.png')
    sal = read_saliency_map(str(tmp_path / 'g.png'))
    assert sal.dtype == np.float32
    np.testing.assert_allclose(sal, grey / 255.)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / 'rgb.png')
    np.testing.assert_allclose(
        read_saliency_map(str(tmp_path / 'rgb.png')), grey / 255.)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0, 0] = 9
    Image.fromarray(colour).save(tmp_path / 'c.png')
    with pytest.raises(ValueError, match=r'c\.png.*colour'):
        read_saliency_map(str(tmp_path / 'c.png'))
