"""One run per output directory: the lock of a work dir.

Two trainings started into the same work dir would both write
``iter_N.pth``/``epoch_N.pth`` and ``last_checkpoint``, and one run's
checkpoints would silently replace the other's. :class:`WorkDirLock` is held
by ``tools/train.py`` on its work dir and by ``tools/test.py --out`` on its
output dir for the whole run:

.. code:: text

    DIR/.rca_mm.lock    JSON: host, pid, started (time), command

- The file is locked with ``flock``, which the kernel releases when the
  holder dies, however it dies. The record inside names the holder.
- A second run into a held dir is refused at once
  (:class:`WorkDirLockedError`, naming the dir and the holder).
- A record left by a killed run (its lock no longer held) is stale when its
  process no longer runs on this host: it is taken over with a warning. A
  record from another host cannot be checked from here and is refused; the
  message says which file to remove once that run is known to be gone.
- The holder removes the file when it ends, normally or by an exception.

In a distributed run only rank 0 holds the lock, for every rank
(:func:`launcher_rank` reads the rank from the launcher's environment, so
the lock can be taken before the process group exists).
"""
import contextlib
import errno
import fcntl
import json
import logging
import os
import os.path as osp
import socket
import sys
import time
from typing import ContextManager, Optional

from mmengine.logging import print_log

from rca_mm.fileio import pid_alive

LOCK_NAME = '.rca_mm.lock'

# The environment variable holding the global rank, per launcher.
_RANK_VARIABLES = dict(
    pytorch=('RANK', ),
    slurm=('SLURM_PROCID', ),
    mpi=('OMPI_COMM_WORLD_RANK', 'PMI_RANK'))


class WorkDirLockedError(RuntimeError):
    """The directory is held by another live run."""


def launcher_rank(launcher: str) -> int:
    """The global rank of this process, from the launcher's environment.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        int: the rank; 0 when the launcher sets none (a single process).
    """
    for name in _RANK_VARIABLES.get(launcher, ()):
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


def _describe(holder: dict) -> str:
    return (f'pid {holder.get("pid")} on host {holder.get("host")!r}, '
            f'started {holder.get("started")}'
            f' (command: {holder.get("command") or "?"})')


class WorkDirLock:
    """Exclusive hold of a directory by one run.

    Use it as a context manager, or call :meth:`acquire` and
    :meth:`release`::

        with WorkDirLock(cfg.work_dir):
            runner.train()

    Args:
        directory (str): the directory; created when missing.
        what (str): how the directory is named in messages (the option
            that chose it). Default: 'work dir'.
    """

    def __init__(self, directory: str, *, what: str = 'work dir') -> None:
        self.directory = directory
        self.what = what
        self.path = osp.join(directory, LOCK_NAME)
        self._fd: Optional[int] = None

    def _refuse(self, holder: dict, hint: str) -> None:
        raise WorkDirLockedError(
            f'the {self.what} {self.directory!r} is in use by another run: '
            f'{_describe(holder)}. {hint}')

    def _read_holder(self, fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        data = b''
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        try:
            holder = json.loads(data.decode('utf-8')) if data.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            holder = dict(unreadable=data[:200].decode('utf-8', 'replace'))
        return holder if isinstance(holder, dict) else {}

    def _open_locked(self) -> Optional[int]:
        """Open and ``flock`` the lock file; None when another process holds
        it. Retries when the file was removed between the open and the lock
        (a holder releasing it), so the lock is on the file at ``path``."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except OSError as err:
                # A file system without flock: the record alone decides.
                if err.errno not in (errno.ENOLCK, errno.EINVAL, errno.ENOSYS,
                                     errno.EOPNOTSUPP):
                    os.close(fd)
                    raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def acquire(self) -> None:
        """Take the lock, or take over a stale one.

        Raises:
            WorkDirLockedError: another live run holds the directory, or a
                run on another host left its record.
        """
        os.makedirs(self.directory, exist_ok=True)
        fd = self._open_locked()
        if fd is None:
            holder = {}
            with contextlib.suppress(FileNotFoundError), open(self.path,
                                                              'rb') as f:
                holder = self._read_holder(f.fileno())
            self._refuse(
                holder, 'Wait for it to finish, or choose another '
                f'{self.what}.')
        holder = self._read_holder(fd)
        host = socket.gethostname()
        if holder:
            # No host: a record cut short by a kill while it was written.
            pid = holder.get('pid')
            if holder.get('host') not in (None, host):
                os.close(fd)
                self._refuse(
                    holder, f'It runs on another host, so this one cannot '
                    f'tell whether it is still alive; once it is known to '
                    f'be gone, remove {self.path!r}.')
            if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
                os.close(fd)
                self._refuse(
                    holder, 'Wait for it to finish, or choose '
                    f'another {self.what}.')
            print_log(
                f'WorkDirLock: took over the stale lock of the '
                f'{self.what} {self.directory!r} left by {_describe(holder)}'
                ', which no longer runs (killed?)',
                logger='current',
                level=logging.WARNING)
        record = dict(
            host=host,
            pid=os.getpid(),
            started=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
            command=' '.join([sys.executable] + sys.argv))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + '\n').encode('utf-8'))
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and let go of the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def lock_dir(directory: str,
             launcher: str,
             what: str = 'work dir') -> ContextManager:
    """The lock of ``directory`` for a run started by ``launcher``.

    Rank 0 holds it for all ranks; on the other ranks this is a no-op (the
    launcher ends them when rank 0 is refused).

    Args:
        directory (str): the directory to hold.
        launcher (str): the run's ``--launcher``.
        what (str): how the directory is named in messages. Default:
            'work dir'.
    """
    if launcher_rank(launcher) != 0:
        return contextlib.nullcontext()
    return WorkDirLock(directory, what=what)
