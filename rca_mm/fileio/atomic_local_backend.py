"""A local file backend whose writes are atomic.

mmengine's ``LocalBackend.put`` opens the final file name with ``'wb'`` and
writes into it, so a process killed while saving a checkpoint leaves a
truncated ``epoch_N.pth`` behind. :class:`AtomicLocalBackend` writes to a
temporary file in the same directory, flushes and fsyncs it, and renames it
over the final name (``os.replace``, atomic on POSIX): a reader sees the old
file or the new one, never a partial one. Everything else (reading, listing,
removing) is ``LocalBackend``'s.

It is registered with mmengine's file I/O as ``'atomic_local'``, so any
mmengine component that takes ``backend_args`` can use it::

    backend_args = dict(backend='atomic_local')
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .atomic import atomic_open


@register_backend('atomic_local', force=True)
class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` with atomic ``put`` and ``put_text``."""

    registered_name = 'atomic_local'

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (directory created).

        Args:
            obj (bytes): the data.
            filepath (str | Path): the final file name.
        """
        with atomic_open(str(filepath), 'wb') as f:
            f.write(obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically.

        Args:
            obj (str): the text.
            filepath (str | Path): the final file name.
            encoding (str): text encoding. Default: ``'utf-8'``.
        """
        self.put(obj.encode(encoding), filepath)
