"""The on-disk store of OAA's accumulated attention maps.

One ``<img_name>.npz`` per image in one directory, in the format of
:func:`rca_mm.fileio.save_oaa_npz`: the 0-based foreground classes stored,
their maps, each the element-wise maximum of every map written for that
class (OAA's accumulation, Jiang et al., ICCV 2019, Sec. 3.1), and the
original image size, for whoever resizes the maps to it.

Every write goes to a temporary file in the same directory and is renamed
over the old file with ``os.replace``, so a reader (or a run killed
mid-write) sees the old or the new file, never a partial one; leftover
``*.tmp`` files are ignored. Read-modify-write of one image is serialised
across processes with ``fcntl.flock`` on one of a fixed set of lock files
(``.locks/``), so ranks may write concurrently, even to the same image (as
happens when a distributed sampler pads its last batch with repeats).
"""
import fcntl
import os
import os.path as osp
import zlib
from contextlib import contextmanager
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from rca_mm.fileio import load_oaa_npz, save_oaa_npz


class OAAEntry(NamedTuple):
    """What :meth:`OAAStore.load` returns.

    Attributes:
        class_ids (np.ndarray): int64 (k,), 0-based foreground class ids.
        maps (np.ndarray): float32 (k, h, w) in [0, 1].
        ori_shape (tuple[int, int] | None): the original image size, if
            stored.
    """
    class_ids: np.ndarray
    maps: np.ndarray
    ori_shape: Optional[Tuple[int, int]]


class OAAStore:
    """A directory of accumulated attention maps keyed by image name.

    Args:
        store_dir (str): the directory; created if missing.
        num_locks (int): number of lock files the images are hashed onto.
            Default: 64.
    """

    SUFFIX = '.npz'

    def __init__(self, store_dir: str, num_locks: int = 64) -> None:
        self.store_dir = store_dir
        self.num_locks = num_locks
        os.makedirs(osp.join(store_dir, '.locks'), exist_ok=True)

    def path(self, img_name: str) -> str:
        """The ``.npz`` file of ``img_name``."""
        if not img_name or '/' in img_name or os.sep in img_name or \
                img_name.startswith('.'):
            raise ValueError(
                f'OAAStore: image name {img_name!r} cannot be a file name in '
                f'{self.store_dir!r} (empty, hidden or with a path '
                'separator); the metainfo img_name must be the file stem')
        return osp.join(self.store_dir, img_name + self.SUFFIX)

    def __contains__(self, img_name: str) -> bool:
        return osp.isfile(self.path(img_name))

    def names(self) -> List[str]:
        """The sorted names of the stored images."""
        return sorted(f[:-len(self.SUFFIX)] for f in os.listdir(self.store_dir)
                      if f.endswith(self.SUFFIX) and not f.startswith('.'))

    @contextmanager
    def _locked(self, img_name: str) -> Iterator[None]:
        index = zlib.crc32(img_name.encode()) % self.num_locks
        lock_path = osp.join(self.store_dir, '.locks', f'{index}.lock')
        with open(lock_path, 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self, img_name: str) -> OAAEntry:
        """Read the stored maps of ``img_name``.

        Raises:
            FileNotFoundError: nothing stored for ``img_name``.
            ValueError: the file is not a valid store entry.
        """
        path = self.path(img_name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'OAAStore: no accumulated maps for image {img_name!r} '
                f'({path!r} does not exist); was it trained with '
                'OAAAccumulationHook into this store_dir?')
        return OAAEntry(*load_oaa_npz(path))

    def update(self,
               img_name: str,
               class_ids: Sequence[int],
               maps: np.ndarray,
               ori_shape: Optional[Sequence[int]] = None) -> None:
        """Merge ``maps`` into the store by element-wise maximum.

        Args:
            img_name (str): the image id (file stem).
            class_ids (Sequence[int]): 0-based foreground ids, one per map,
                distinct.
            maps (np.ndarray): (k, h, w) values in [0, 1]; all maps of one
                image must have the same (h, w).
            ori_shape (Sequence[int], optional): original (H, W); kept from
                the stored entry when None.
        """
        class_ids = [int(c) for c in class_ids]
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 3 or maps.shape[0] != len(class_ids):
            raise ValueError(
                f'OAAStore.update({img_name!r}): maps must be (k, h, w) with '
                f'k = {len(class_ids)} class ids, got {maps.shape}')
        if len(set(class_ids)) != len(class_ids):
            raise ValueError(f'OAAStore.update({img_name!r}): repeated class '
                             f'ids {class_ids}')
        if maps.size and (maps.min() < 0 or maps.max() > 1):
            raise ValueError(f'OAAStore.update({img_name!r}): maps must be '
                             'in [0, 1]')
        path = self.path(img_name)
        with self._locked(img_name):
            merged = {}
            if osp.isfile(path):
                old = self.load(img_name)
                if old.maps.shape[1:] != maps.shape[1:]:
                    raise ValueError(
                        f'OAAStore.update({img_name!r}): stored maps are '
                        f'{old.maps.shape[1:]}, new ones {maps.shape[1:]}; '
                        'the training input size must be fixed for OAA')
                merged = dict(zip(old.class_ids.tolist(), old.maps))
                if ori_shape is None:
                    ori_shape = old.ori_shape
            for cls, new in zip(class_ids, maps):
                merged[cls] = np.maximum(merged[cls], new) \
                    if cls in merged else new
            ids = sorted(merged)
            save_oaa_npz(path, ids, np.stack([merged[c] for c in ids]),
                         ori_shape)

    def clear(self) -> int:
        """Remove every entry and leftover temporary file; return the number
        of entries removed."""
        removed = 0
        for f in os.listdir(self.store_dir):
            if f.endswith(self.SUFFIX) and not f.startswith('.'):
                removed += 1
            elif not f.endswith('.tmp'):
                continue
            os.remove(osp.join(self.store_dir, f))
        return removed
