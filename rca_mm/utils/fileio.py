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
from typing import IO, Iterator


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


def write_json_atomic(path: str, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(data, f, indent=2, default=float)
