"""The overlay ``PseudoLabelMetric(show_dir=...)`` writes per image."""
import cv2
import numpy as np

from rca_mm.fileio import voc_palette


def draw_pseudo_label_overlay(image: np.ndarray, cams: np.ndarray,
                              labels: np.ndarray) -> np.ndarray:
    """The strongest CAM and the pseudo label, each on the image.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB image.
        cams (np.ndarray): (K, H, W) CAMs of the tagged classes, in [0, 1].
        labels (np.ndarray): (H, W) uint8 pseudo label (255 ignore).

    Returns:
        np.ndarray: (H, 2 W, 3) uint8 BGR (for ``cv2.imwrite``): left the
        pixel-wise maximum of the CAMs (jet), right the label (VOC palette),
        each blended half and half with the image.
    """
    bgr = np.ascontiguousarray(image[..., ::-1])
    strongest = cams.max(axis=0) if len(cams) else np.zeros(labels.shape)
    heat = cv2.applyColorMap(
        np.clip(strongest * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = np.ascontiguousarray(voc_palette()[labels][..., ::-1])
    return np.concatenate([
        cv2.addWeighted(bgr, 0.5, heat, 0.5, 0),
        cv2.addWeighted(bgr, 0.5, colours, 0.5, 0)
    ],
                          axis=1)
