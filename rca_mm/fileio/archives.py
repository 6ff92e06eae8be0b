"""``.npz`` archives of per-class maps: exported CAMs and the OAA store.

Two stages store one archive per image in the same layout, ``class_ids``
``(K,)`` and K maps ``(K, H, W)``, under a stage-specific key:

.. code:: text

    OUT/cams/<img_name>.npz        PseudoLabelWriter(save_cams=True)
        class_ids  (K,) int64      label-map ids of the tagged classes
        cams       (K, H, W) float16 in [0, 1], compressed
    STORE/<img_name>.npz           OAAStore (rca_mm.fileio.oaa_store)
        class_ids  (k,) int64      0-based foreground ids, sorted
        maps       (k, h, w) float16 in [0, 1]
        ori_shape  (2,) int64      the original image size, or (0,)

Both are written atomically (:mod:`rca_mm.fileio.atomic`).
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .atomic import atomic_open, atomic_write


def load_class_maps(
    path: str, maps_key: str, owner: str, extra_keys: Sequence[str] = ()
) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    """Read ``class_ids`` and the maps of an existing ``.npz`` archive.

    Args:
        path (str): the archive.
        maps_key (str): the key of the ``(K, H, W)`` maps.
        owner (str): who reads, the start of every error message.
        extra_keys (Sequence[str]): further arrays to return as they are.

    Returns:
        tuple: ``class_ids`` (K,) int64, the maps (K, H, W) float32 and a
        dict of the ``extra_keys`` arrays.

    Raises:
        ValueError: the file is not an ``.npz`` with these keys, or its maps
            are not K maps of (H, W).
    """
    keys = ('class_ids', maps_key, *extra_keys)
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in keys}
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f'{owner}: {path!r} is not an .npz with '
                         f'{", ".join(keys)} ({err})') from None
    class_ids = arrays.pop('class_ids').astype(np.int64)
    maps = arrays.pop(maps_key).astype(np.float32)
    if maps.ndim != 3 or len(maps) != len(class_ids):
        raise ValueError(f'{owner}: {path!r} holds {len(class_ids)} class '
                         f'ids but {maps_key} of shape {maps.shape}')
    return class_ids, maps, arrays


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

    Args:
        path (str): the ``.npz`` file.

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


def save_oaa_npz(path: str, class_ids: Sequence[int], maps: np.ndarray,
                 ori_shape: Optional[Sequence[int]]) -> None:
    """Write one image's entry of the OAA store (uncompressed), atomically.

    Args:
        path (str): the ``.npz`` file.
        class_ids (Sequence[int]): (k,) 0-based foreground ids, sorted.
        maps (np.ndarray): (k, h, w) maps in [0, 1], stored as float16.
        ori_shape (Sequence[int], optional): the original (H, W); None
            stores an empty array.
    """
    with atomic_open(path, 'wb') as f:
        np.savez(
            f,
            class_ids=np.asarray(class_ids, dtype=np.int64),
            maps=np.asarray(maps).astype(np.float16),
            ori_shape=np.asarray(
                ori_shape if ori_shape is not None else [], dtype=np.int64))


def load_oaa_npz(
        path: str) -> Tuple[np.ndarray, np.ndarray, Optional[Tuple[int, int]]]:
    """Read a file of :func:`save_oaa_npz`.

    Args:
        path (str): an existing ``.npz`` file.

    Returns:
        tuple: ``class_ids`` (k,) int64, ``maps`` (k, h, w) float32 and
        ``ori_shape`` (a pair of ints, or None when not stored).

    Raises:
        ValueError: the file is not such an archive; the message starts
            with ``OAAStore``.
    """
    class_ids, maps, extra = load_class_maps(path, 'maps', 'OAAStore',
                                             ('ori_shape', ))
    ori_shape = tuple(int(v) for v in extra['ori_shape']) \
        if extra['ori_shape'].size == 2 else None
    return class_ids, maps, ori_shape
