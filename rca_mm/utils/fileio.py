"""Atomic file writes: a reader never sees a half-written file.

Every output a long job leaves behind (pseudo labels, CAMs, OAA maps,
metrics, pipeline markers) is written to a temporary file in the same
directory and renamed over the final name, which POSIX makes atomic. A job
killed mid-write leaves at most a ``.tmp`` file that the next run ignores.
"""
import contextlib
import json
import os
import os.path as osp
import tempfile
from typing import IO, Callable, Iterator


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'wb') -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left
    as it was.

    Args:
        path (str): the final file name; its directory is created.
        mode (str): ``'wb'`` or ``'w'``.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` with a writer that takes a file name, atomically.

    For writers that open the file themselves (``PIL.Image.save``,
    ``cv2.imwrite``, ``np.save``): the temporary name keeps ``path``'s
    extension, so writers that pick the format by extension work.

    Args:
        path (str): the final file name; its directory is created.
        write (Callable[[str], None]): writes the whole file to the name it
            is given.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    ext = osp.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f'.{osp.basename(path)}.', suffix=f'.tmp{ext}')
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(data, f, indent=2, default=float)
