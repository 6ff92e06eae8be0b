import numpy as np
import pytest
from PIL import Image

from rca_mm.fileio import read_image


def test_channel_orders_and_conversions(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    Image.fromarray(rgb).save(tmp_path / 'c.png')
    bgr, note = read_image(str(tmp_path / 'c.png'))
    assert note is None and bgr.flags.c_contiguous
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    image, _ = read_image(str(tmp_path / 'c.png'), channel_order='rgb')
    np.testing.assert_array_equal(image, rgb)
    assert image.flags.c_contiguous and image.flags.writeable
    Image.fromarray(rgb[..., 0]).save(tmp_path / 'g.png')
    grey, note = read_image(str(tmp_path / 'g.png'), channel_order='rgb')
    assert 'grey image; converted to RGB' in note
    np.testing.assert_array_equal(grey, np.repeat(rgb[..., :1], 3, axis=2))
    with pytest.raises(ValueError, match="c.png.*channel_order"):
        read_image(str(tmp_path / 'c.png'), channel_order='hsv')
    with pytest.raises(FileNotFoundError, match='none.png'):
        read_image(str(tmp_path / 'none.png'))


def test_exif_orientation_only_when_asked(tmp_path):
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[0, 0] = 255
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / 'r.png', exif=exif.tobytes())
    stored, _ = read_image(str(tmp_path / 'r.png'), channel_order='rgb')
    np.testing.assert_array_equal(stored, rgb)
    shown, _ = read_image(
        str(tmp_path / 'r.png'), channel_order='rgb', exif_orientation=True)
    np.testing.assert_array_equal(shown, np.rot90(rgb, -1))
