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
import os.path as osp
import pickle
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader


_DEFAULT_STATISTICS = frozenset(('min', 'max', 'current', 'mean'))


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside rca_mm's allow-list."""


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


def safe_torch_load(file: Union[str, Any],
                    map_location: Optional[Any] = None) -> Any:
    """``torch.load(weights_only=True)`` with a clear error on refusal.

    Args:
        file (str | file-like): the checkpoint.
        map_location: as for :func:`torch.load`. Default: None.

    Raises:
        UnsafeCheckpointError: the file pickles an object that is not on the
            allow-list. Nothing from the file has been executed.
    """
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message: a paragraph of advice, the reason, a doc link.
        paragraphs = [p.strip() for p in str(exc).split('\n\n') if p.strip()]
        reason = paragraphs[1] if len(paragraphs) > 2 else paragraphs[-1]
        reason = reason.replace('WeightsUnpickler error: ', '')
        name = file if isinstance(file, str) else getattr(
            file, 'name', repr(file))
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {name!r}: it contains a pickled '
            f'object that is not on rca_mm\'s allow-list ({reason}). '
            'Nothing in it was executed. rca_mm loads checkpoints with '
            'torch.load(weights_only=True); checkpoints written by '
            'tools/train.py load as they are.') from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's loader for local paths, replaced by a safe one.

    Used by ``Runner.resume``/``load_checkpoint`` and by
    ``init_cfg=dict(type='Pretrained', ...)``.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint file {filename!r} does not exist')
    return safe_torch_load(filename, map_location=map_location)
