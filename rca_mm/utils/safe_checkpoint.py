"""Loading checkpoints with ``torch.load(weights_only=True)``.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6
that means ``weights_only=True``, and resuming an mmengine checkpoint fails on
the first non-tensor object it holds ("Unsupported global: ...HistoryBuffer").
Instead of turning the check off, :func:`register_safe_globals` allow-lists
exactly the globals that rca_mm's checkpoints contain, and
:func:`load_from_local` replaces mmengine's loader for local paths so that a
refused checkpoint gives a clear message instead of torch's advice to set
``weights_only=False``.

What an mmengine checkpoint pickles besides tensors:

- ``message_hub.log_scalars``: :class:`~mmengine.logging.HistoryBuffer`
  objects holding numpy arrays (``_reconstruct``, ``ndarray``, ``dtype`` and
  the dtype classes, ``scalar`` for numpy scalars).
- Each HistoryBuffer keeps its statistic functions (``mean``, ``current``,
  ...), which pickle by reference as ``getattr(HistoryBuffer, 'mean')``.
  ``builtins.getattr`` itself is never allowed: a stand-in that resolves only
  HistoryBuffer's registered statistics takes its name.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Callable, List, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

_DEFAULT_STATISTICS = frozenset(('min', 'max', 'current', 'mean'))


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside rca_mm's allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or is not a checkpoint."""


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling a checkpoint.

    Resolves only ``getattr(HistoryBuffer, <statistic>)``, the one use of
    ``getattr`` in an mmengine checkpoint, and refuses anything else. The
    statistics are mmengine's defaults (filled into the class dict only when
    a first HistoryBuffer is created) and any registered with
    ``HistoryBuffer.register_statistics``.
    """
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise UnsafeCheckpointError(
        f'getattr({obj!r}, {name!r}) is not allowed while loading a '
        'checkpoint; only HistoryBuffer statistics are')


def _numpy_globals() -> list:
    from numpy.core.multiarray import _reconstruct, scalar
    dtypes = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
              np.uint16, np.uint32, np.uint64, np.float16, np.float32,
              np.float64)
    return [_reconstruct, scalar, np.ndarray, np.dtype
            ] + [type(np.dtype(t)) for t in dtypes]


def register_safe_globals() -> None:
    """Allow-list the globals of an mmengine checkpoint for ``weights_only``.

    Idempotent; called when :mod:`rca_mm` is imported.
    """
    torch.serialization.add_safe_globals(
        _numpy_globals() +
        [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')])


def _refused_global(message: str) -> str:
    """What torch's ``weights_only`` refusal says was refused: the global
    it names (``GLOBAL posix.system``), else the reason on its
    ``WeightsUnpickler error:`` line, else its last paragraph after the
    advice that is not the documentation link."""
    found = re.search(r'GLOBAL ([\w.]+)', message)
    if found:
        return f'global {found.group(1)}'
    for line in message.splitlines():
        reason = line.partition('WeightsUnpickler error:')[2].strip()
        if reason:
            return reason
    paragraphs = [
        p.strip() for p in message.split('\n\n')[1:]
        if p.strip() and 'Check the documentation' not in p
    ]
    return paragraphs[-1] if paragraphs else message


def _intact_checkpoints(filename: str) -> List[str]:
    """The other ``*.pth`` files next to ``filename`` whose zip directory
    reads (not truncated), newest first."""
    directory = osp.dirname(osp.abspath(filename))
    others = [
        osp.join(directory, name) for name in os.listdir(directory)
        if name.endswith('.pth')
        and osp.join(directory, name) != osp.abspath(filename)
    ]
    intact = []
    for path in sorted(others, key=osp.getmtime, reverse=True):
        try:
            with zipfile.ZipFile(path):
                intact.append(path)
        except (OSError, zipfile.BadZipFile):
            continue
    return intact


def safe_torch_load(file: Union[str, Any],
                    map_location: Optional[Any] = None) -> Any:
    """``torch.load(weights_only=True)`` with a clear error on refusal.

    Args:
        file (str | file-like): the checkpoint.
        map_location: as for :func:`torch.load`. Default: None.

    Raises:
        UnsafeCheckpointError: the file pickles an object that is not on the
            allow-list; its message names the file and the refused global.
            Nothing from the file has been executed.
        CorruptCheckpointError: the file is truncated or not a checkpoint;
            its message names the file and the intact checkpoints next to
            it.
    """
    name = file if isinstance(file, str) else getattr(file, 'name', repr(file))
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {name!r}: it contains a pickled '
            f'object that is not on rca_mm\'s allow-list '
            f'({_refused_global(str(exc))}). Nothing in it was executed. '
            'rca_mm loads checkpoints with torch.load(weights_only=True); '
            'checkpoints written by tools/train.py load as they are.'
        ) from None
    except (RuntimeError, EOFError) as exc:
        if isinstance(exc, RuntimeError) and \
                'PytorchStreamReader' not in str(exc):
            raise
        reason = str(exc).split('. This is an internal')[0] or 'empty file'
        intact = _intact_checkpoints(name) if isinstance(name, str) and \
            osp.isfile(name) else []
        hint = (f' Intact checkpoints next to it, newest first: '
                f'{", ".join(repr(p) for p in intact[:3])}; to resume from '
                f'one, pass --resume --cfg-options load_from={intact[0]}'
                if intact else ' No intact checkpoint lies next to it.')
        raise CorruptCheckpointError(
            f'checkpoint {name!r} is truncated or corrupt ({reason}); was '
            f'its run killed while writing it, or the disk full?{hint}'
        ) from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's loader for local paths, replaced by a safe one.

    Used by ``Runner.resume``/``load_checkpoint`` and by
    ``init_cfg=dict(type='Pretrained', ...)``.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return safe_torch_load(filename, map_location=map_location)
