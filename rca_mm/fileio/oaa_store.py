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

:class:`OAAMemory` holds the same maps in host memory, in the stored dtype
(float16), and merges them into an :class:`OAAStore` when flushed. Rounding
to float16 is monotone, so ``f16(max(a, b)) == max(f16(a), f16(b))``: maps
merged in memory and flushed give, bit for bit, the files that writing every
map to the store at once gives, in any order and from any number of
processes (the maximum is commutative and idempotent).
"""
import fcntl
import os
import os.path as osp
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .archives import load_oaa_npz, save_oaa_npz


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


def _checked(owner: str, img_name: str, class_ids: Sequence[int],
             maps: np.ndarray) -> Tuple[List[int], np.ndarray]:
    """``class_ids`` as ints and ``maps`` as float32, after checking that
    they are k distinct ids and k maps (k, h, w) in [0, 1]."""
    class_ids = [int(c) for c in class_ids]
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(class_ids):
        raise ValueError(f'{owner}({img_name!r}): maps must be (k, h, w) with '
                         f'k = {len(class_ids)} class ids, got {maps.shape}')
    if len(set(class_ids)) != len(class_ids):
        raise ValueError(f'{owner}({img_name!r}): repeated class '
                         f'ids {class_ids}')
    if maps.size and (maps.min() < 0 or maps.max() > 1):
        raise ValueError(f'{owner}({img_name!r}): maps must be '
                         'in [0, 1]')
    return class_ids, maps


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
        class_ids, maps = _checked('OAAStore.update', img_name, class_ids,
                                   maps)
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

    def stored_class_ids(self) -> Dict[str, List[int]]:
        """The class ids of every stored image, read without the maps.

        Raises:
            ValueError: a file is not a valid store entry.
        """
        index = {}
        for name in self.names():
            path = self.path(name)
            try:
                with np.load(path) as archive:
                    index[name] = archive['class_ids'].astype(
                        np.int64).tolist()
            except (OSError, KeyError, ValueError) as err:
                raise ValueError(f'OAAStore: {path!r} is not an .npz with '
                                 f'class_ids ({err})') from None
        return index

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


class OAAMemory:
    """OAA's accumulated maps in host memory, merged into a store on flush.

    Holds, per image and class, the element-wise maximum of the maps given
    to :meth:`update` since the last :meth:`flush`, in the store's dtype
    (float16; the module docstring says why the result is exact).
    :meth:`flush` merges every held image into an :class:`OAAStore` (read,
    maximum, atomic write, under the store's file lock, so that processes
    holding maps of the same image merge exactly) and empties the memory.

    Attributes:
        nbytes (int): host memory held by the maps (array headers
            included), what a bound on the memory is checked against.
    """

    def __init__(self) -> None:
        self._maps: Dict[str, Dict[int, np.ndarray]] = {}
        self._ori_shapes: Dict[str, Optional[tuple]] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._maps)

    def __contains__(self, img_name: str) -> bool:
        return img_name in self._maps

    def names(self) -> List[str]:
        """The sorted names of the images held."""
        return sorted(self._maps)

    def class_ids(self, img_name: str) -> List[int]:
        """The sorted class ids held for ``img_name`` (none: ``[]``)."""
        return sorted(self._maps.get(img_name, ()))

    def update(self,
               img_name: str,
               class_ids: Sequence[int],
               maps: np.ndarray,
               ori_shape: Optional[Sequence[int]] = None) -> None:
        """Merge ``maps`` into the memory by element-wise maximum.

        Takes the arguments of :meth:`OAAStore.update` (see there) and checks
        them the same way; with ``ori_shape=None`` the one held is kept.
        """
        class_ids, maps = _checked('OAAMemory.update', img_name, class_ids,
                                   maps)
        maps = maps.astype(np.float16)
        held = self._maps.get(img_name)
        if held:
            shape = next(iter(held.values())).shape
            if shape != maps.shape[1:]:
                raise ValueError(
                    f'OAAMemory.update({img_name!r}): held maps are '
                    f'{shape}, new ones {maps.shape[1:]}; the training '
                    'input size must be fixed for OAA')
        else:
            held = self._maps[img_name] = {}
            self._ori_shapes[img_name] = None
        for cls, new in zip(class_ids, maps):
            old = held.get(cls)
            if old is None:
                held[cls] = new = new.copy()  # owns its data
                self.nbytes += sys.getsizeof(new)
            else:
                np.maximum(old, new, out=old)
        if ori_shape is not None:
            self._ori_shapes[img_name] = tuple(ori_shape)

    def flush(self,
              store: OAAStore,
              num_threads: int = 1) -> Dict[str, List[int]]:
        """Merge every held image into ``store`` and empty the memory.

        If a write fails, the error is raised and the memory is kept: a
        second flush merges again the images already written, which
        changes nothing.

        Args:
            store (OAAStore): the store.
            num_threads (int): images written concurrently (the writes wait
                on the file system, not on Python). Default: 1.

        Returns:
            dict[str, list[int]]: the class ids merged, per image.
        """
        names = sorted(self._maps)

        def write(name: str) -> None:
            held = self._maps[name]
            ids = sorted(held)
            store.update(name, ids, np.stack([held[c] for c in ids]),
                         self._ori_shapes[name])

        if num_threads > 1 and len(names) > 1:
            with ThreadPoolExecutor(min(num_threads, len(names))) as pool:
                list(pool.map(write, names))
        else:
            for name in names:
                write(name)
        written = {name: sorted(self._maps[name]) for name in names}
        self.clear()
        return written

    def clear(self) -> None:
        """Drop every held map."""
        self._maps.clear()
        self._ori_shapes.clear()
        self.nbytes = 0
