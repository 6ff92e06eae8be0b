"""Atomic file writes: a reader never sees a half-written file.

Every output a long job leaves behind (pseudo labels, CAMs, OAA maps,
metrics, pipeline markers, checkpoints) is written to a temporary file in
the same directory and renamed over the final name, which POSIX makes
atomic.

.. code:: text

    DIR/.<name>.<host>.<pid>.<8 hex>.tmp[<ext of name>]     while writing
    DIR/<name>                                             after the rename

- The temporary file is created like any other file (``0o666`` less the
  process's umask), so the output gets the mode ``open`` would give it.
- A write error (a full disk, ...) is raised as an ``OSError`` naming the
  final file; the temporary file is removed.
- A process killed between the write and the rename leaves its temporary
  file. The first atomic write of a later process into that directory
  removes the temporaries of this pattern whose process (same host) no
  longer runs; those of live processes and of other hosts stay.
"""
import contextlib
import json
import os
import os.path as osp
import re
import secrets
import socket
from typing import IO, Callable, Iterable, Iterator, Set

# `<host>.<pid>.<8 hex>.tmp[<ext>]` at the end of a temporary file's name.
_TMP_TAIL = re.compile(r'\.(\d+)\.[0-9a-f]{8}\.tmp(\.[^.]*)?$')
# Directories this process has already cleaned of stale temporaries.
_CLEANED: Set[str] = set()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(directory: str) -> int:
    """Remove the temporary files that dead processes of this host left in
    ``directory`` (killed between a write and its rename).

    Args:
        directory (str): the directory.

    Returns:
        int: the number of files removed.
    """
    host_tail = f'.{socket.gethostname()}'
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _TMP_TAIL.search(entry.name)
            if (not entry.name.startswith('.') or match is None
                    or not entry.name[:match.start()].endswith(host_tail)):
                continue
            pid = int(match.group(1))
            if pid == os.getpid() or pid_alive(pid):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)
                removed += 1
    return removed


def _create_temporary(path: str, suffix: str) -> tuple:
    """Create the directory and a new temporary file next to ``path``.

    Returns:
        tuple: the open file descriptor and the temporary file's name.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if directory not in _CLEANED:
        remove_stale_temporaries(directory)
        _CLEANED.add(directory)
    while True:
        tmp = osp.join(
            directory, f'.{osp.basename(path)}.{socket.gethostname()}.'
            f'{os.getpid()}.{secrets.token_hex(4)}{suffix}')
        try:
            # 0o666 & ~umask, like open(path, 'w').
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                           0o666), tmp
        except FileExistsError:
            continue


def _naming(path: str, err: OSError) -> OSError:
    """``err`` naming the final file ``path`` instead of the temporary
    one, or instead of none."""
    if err.errno is None:
        return OSError(f'{err} (writing {path!r})')
    return OSError(err.errno, err.strerror, path)


@contextlib.contextmanager
def _replacing(tmp: str, path: str) -> Iterator[None]:
    """Rename the temporary file ``tmp`` over ``path`` when the block ends.

    If the block raises, ``tmp`` is removed and ``path`` is left as it was;
    an ``OSError`` about ``tmp`` (or about no file) is raised again naming
    ``path``.
    """
    try:
        try:
            yield
            os.replace(tmp, path)
        except OSError as err:
            if err.filename not in (None, tmp):
                raise  # about another file
            raise _naming(path, err) from err
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'wb') -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left
    as it was.

    Args:
        path (str): the final file name; its directory is created.
        mode (str): ``'wb'`` or ``'w'``.

    Raises:
        OSError: writing failed; the error names ``path``.
    """
    fd, tmp = _create_temporary(path, '.tmp')
    with _replacing(tmp, path):
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` with a writer that takes a file name, atomically.

    For writers that open the file themselves (``PIL.Image.save``,
    ``cv2.imwrite``, ``np.save``): the temporary name keeps ``path``'s
    extension, so writers that pick the format by extension work.

    Args:
        path (str): the final file name; its directory is created.
        write (Callable[[str], None]): writes the whole file to the name it
            is given.

    Raises:
        OSError: writing failed; the error names ``path``.
    """
    fd, tmp = _create_temporary(path, f'.tmp{osp.splitext(path)[1]}')
    os.close(fd)
    with _replacing(tmp, path):
        write(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    with atomic_open(path, 'wb') as f:
        f.write(data)


def atomic_write_lines(path: str, lines: Iterable[str]) -> None:
    """Write text lines (newline-terminated) atomically."""
    atomic_write_bytes(path, ''.join(f'{ln}\n' for ln in lines).encode())


def write_json_atomic(path: str, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(data, f, indent=2, default=float)
