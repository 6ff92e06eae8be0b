"""Files of the pseudo-label stage: atomic writes, CAM archives, label PNGs.

Layout under a metric's ``output_dir`` (see docs/pseudo_labels.md):

.. code:: text

    OUT/pseudo_labels/<img_name>.png   VOC palette PNG, 0 bg, 255 ignore
    OUT/cams/<img_name>.npz            class_ids (K,) int64 label-map ids,
                                       cams (K, H, W) float16 in [0, 1]

A file appears under its final name only once it is complete: it is
written to a temporary name in the same directory and renamed
(``os.replace`` is atomic on POSIX), so an interrupted run leaves no partial
file that a resumed run would trust.
"""
import os.path as osp
from typing import Tuple

import numpy as np
from PIL import Image

from rca_mm.utils.class_maps_io import load_class_maps
from rca_mm.utils.fileio import atomic_write  # noqa: F401 (re-exported)



def save_cam_npz(path: str, class_ids: np.ndarray, cams: np.ndarray) -> None:
    """Write the tagged classes' CAMs as a compressed ``.npz`` (float16).

    Args:
        path (str): the file to write (atomically), ending in ``.npz``.
        class_ids (np.ndarray): (K,) label-map ids of the classes.
        cams (np.ndarray): (K, H, W) CAMs in [0, 1].
    """

    def write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            np.savez_compressed(
                f,
                class_ids=np.asarray(class_ids, np.int64),
                cams=np.asarray(cams, np.float16))

    atomic_write(path, write)


def load_cam_npz(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read a file of :func:`save_cam_npz`.

    Returns:
        tuple: ``class_ids`` (K,) int64 and ``cams`` (K, H, W) float32.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not such an archive.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'CAM file {path!r} does not exist')
    class_ids, cams, _ = load_class_maps(path, 'cams', 'CAM file')
    return class_ids, cams


def read_label_png(path: str) -> np.ndarray:
    """Read a label map PNG (palette or grey) as its (H, W) uint8 indices.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a single-channel image.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'label map {path!r} does not exist')
    with Image.open(path) as img:
        if img.mode not in ('P', 'L'):
            raise ValueError(f'label map {path!r} has mode {img.mode}; '
                             "expected a palette ('P') or grey ('L') PNG")
        return np.array(img, dtype=np.uint8)
