"""Tiny VOC-layout datasets with lossless PNG images for exact checks."""
import os
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

from rca_mm.fileio import save_label_png


def write_png_layout(root: str,
                     masks: Dict[str, np.ndarray],
                     *,
                     split: str = 'train',
                     saliency: bool = True) -> str:
    """Write ``JPEGImages/<name>.png`` (grey content: every channel equals
    the saliency value), label maps and saliency maps; return ``root``.

    The image of ``name`` has value ``10 * (1 + class) + 3 * row_block`` so
    that crops and flips can be recovered from the pixels.
    """
    for sub in ('JPEGImages', 'SegmentationClassAug', 'SaliencyMaps',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for name, mask in masks.items():
        h, w = mask.shape
        rows = np.arange(h)[:, None] // 4
        cols = np.arange(w)[None, :] // 4
        grey = (7 * rows + 3 * cols + 20 * (mask % 8)) % 250
        grey = grey.astype(np.uint8)
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(
            osp.join(root, 'JPEGImages', name + '.png'))
        save_label_png(mask,
                       osp.join(root, 'SegmentationClassAug', name + '.png'))
        if saliency:
            Image.fromarray(grey).save(
                osp.join(root, 'SaliencyMaps', name + '.png'))
    write_list(root, split, list(masks))
    return root


def write_list(root: str, split: str, names: Sequence[str]) -> str:
    path = osp.join(root, 'ImageSets', 'Segmentation', split + '.txt')
    with open(path, 'w') as f:
        f.write(''.join(n + '\n' for n in names))
    return path


def box_mask(h: int, w: int, boxes: List[tuple]) -> np.ndarray:
    """A label map with ``(cls, y0, y1, x0, x1)`` boxes on background."""
    mask = np.zeros((h, w), np.uint8)
    for cls, y0, y1, x0, x1 in boxes:
        mask[y0:y1, x0:x1] = cls
    return mask
