import cv2
import numpy as np

from rca_mm.fileio import voc_palette
from rca_mm.visualization.pseudo_label_overlay import draw_pseudo_label_overlay


def test_overlay_halves():
    """Left: the strongest CAM in jet, right: the label's palette colour,
    each averaged with the image; BGR."""
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 200  # red
    cams = np.zeros((2, 2, 3), np.float32)
    cams[0, 0, 0] = 1.
    cams[1, 0, 0] = 0.5
    labels = np.array([[1, 0, 255], [0, 2, 0]], np.uint8)
    out = draw_pseudo_label_overlay(image, cams, labels)
    assert out.shape == (2, 6, 3) and out.dtype == np.uint8
    red_bgr = np.array([0, 0, 200])
    jet_top = cv2.applyColorMap(np.array([[255]], np.uint8),
                                cv2.COLORMAP_JET)[0, 0]
    jet_zero = cv2.applyColorMap(np.array([[0]], np.uint8),
                                 cv2.COLORMAP_JET)[0, 0]
    np.testing.assert_allclose(out[0, 0], (red_bgr + jet_top) / 2, atol=1)
    np.testing.assert_allclose(out[1, 1], (red_bgr + jet_zero) / 2, atol=1)
    palette_bgr = voc_palette()[..., ::-1].astype(float)
    for (y, x), label in np.ndenumerate(labels):
        np.testing.assert_allclose(
            out[y, 3 + x], (red_bgr + palette_bgr[label]) / 2, atol=1)
    # No tagged class: the CAM half is the image with jet's zero.
    empty = draw_pseudo_label_overlay(image, cams[:0], labels)
    np.testing.assert_allclose(empty[0, 0], (red_bgr + jet_zero) / 2, atol=1)
