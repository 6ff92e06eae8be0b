import numpy as np

from rca_mm.fileio import VOC_IGNORE_COLOUR, voc_palette


def test_voc_palette():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0],
                                    [128, 128, 0]]
    assert palette[20].tolist() == [0, 64, 128]
    assert tuple(palette[255]) == VOC_IGNORE_COLOUR
    np.testing.assert_array_equal(voc_palette(21), palette[:21])
    assert len({tuple(c) for c in palette}) == 256
