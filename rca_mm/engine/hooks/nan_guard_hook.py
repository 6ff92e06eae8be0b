"""Stop training at the first non-finite loss, before it is checkpointed.

mmengine's ``train_step`` has already run backward and the optimizer step
when ``after_train_iter`` is called, so the weights (and RCA's memory bank,
written in the forward pass) are poisoned by then. What can still be saved
is the checkpoint: :class:`NaNGuardHook` runs its ``after_train_iter`` at
priority ``VERY_HIGH``, ahead of ``CheckpointHook`` (``VERY_LOW``) and every
other hook of the iteration, and raises. A checkpoint due at this iteration
(or at the end of this epoch) is never written, and the one on disk (named
in the message) is the last good one: ``--resume`` restarts from it.

On several processes the finiteness flag is all-reduced, so every rank
raises at the same iteration (DDP has already averaged the poisoned
gradients into every replica) instead of the others hanging in the next
collective.
"""
import math
from typing import Optional, Sequence

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from rca_mm.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """A training loss is NaN or infinite."""


@HOOKS.register_module()
class NaNGuardHook(Hook):
    """Raise :class:`NonFiniteLossError` when a logged loss is not finite.

    Checks every value of the train step's outputs (mmengine's ``log_vars``:
    ``loss`` and each ``loss_*`` term) whose key contains ``keys``.

    Args:
        keys (Sequence[str]): substrings of the output keys to check.
            Default: ``('loss', )``.
        interval (int): check every ``interval`` iterations. Default: 1.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 *,
                 keys: Sequence[str] = ('loss', ),
                 interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(
                f'NaNGuardHook: interval must be >= 1, got {interval}')
        self.keys = tuple(keys)
        self.interval = interval

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Raise before any later hook sees a non-finite loss."""
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        bad = {
            key:
            float(value.detach() if isinstance(value, torch.Tensor) else value)
            for key, value in outputs.items()
            if any(k in key for k in self.keys) and not _finite(value)
        }
        flag = torch.tensor(float(bool(bad)))
        if is_distributed():
            all_reduce(flag, op='max')
        if not bad and not flag.item():
            return
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1}, batch {batch_idx + 1})'
        what = (', '.join(
            f'{k}={v}'
            for k, v in bad.items()) if bad else 'on another process')
        last = runner.message_hub.get_info('last_ckpt')
        keep = (f'the last good checkpoint is {last}; resume from it with '
                '--resume (after lowering the learning rate or fixing the '
                'data)' if last else 'no checkpoint had been written yet')
        raise NonFiniteLossError(
            f'NaNGuardHook: non-finite loss at {where}: {what}. Training '
            f'stopped before this iteration could be checkpointed; {keep}.')


def _finite(value) -> bool:
    """Whether a logged value (tensor or number) is finite."""
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))
