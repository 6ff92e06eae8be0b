"""Random-number-generator state in checkpoints, for an exact ``--resume``.

mmengine (0.10.7) reseeds at start-up and restores the sampler's epoch, but
saves no RNG state. What a stage-1 run draws from the global generators:

- the data pipeline (random resize, crop, flip, colour jitter) draws from
  numpy's and Python's generators, in the main process when
  ``num_workers=0`` (worker processes are reseeded by mmengine's
  ``worker_init_fn`` from the seed, rank and worker id alone);
- RCA's region mixup (Eq. 5: partners and ``w ~ Beta``) and dropout draw
  from torch's generator, and so does each ``DataLoader`` iterator for its
  base seed.

:class:`RNGStateHook` snapshots the three generators (and CUDA's) of every
process when a checkpoint is due, stores them in the checkpoint's
``meta['rng_state']`` (one entry per rank, rank 0 writes the checkpoint) and
restores them on ``--resume`` right before the first resumed epoch
(epoch-based loops) or iteration (iteration-based loops). Validation is made
neutral: the generators are saved at ``before_val`` and restored at
``after_val``, so the training stream does not depend on when, or whether,
validation runs (and the snapshot taken before a checkpoint still holds
after the validation that follows it).

Exact for epoch-based loops (stage 1). For iteration-based loops the model's
draws are exact; the pipeline's are exact with ``num_workers > 0`` and
``persistent_workers=False`` (mmengine replays the skipped batches through
reseeded workers), not with ``num_workers=0``.

On a GPU, ``Runner.resume`` maps the saved states to the device with the
weights; they are moved back to CPU ``uint8`` before being set. A process
that sees fewer CUDA devices than the one that saved (torchrun on a node,
then Slurm with one GPU per task) gets the state of the device it drew
from, and a warning names the states left out.
"""
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from torch import Tensor

from rca_mm.registry import HOOKS


def get_rng_state() -> dict:
    """The generator states of this process (all picklable by
    ``torch.load(weights_only=True)`` with rca_mm's allow-list)."""
    version, mt, gauss = random.getstate()
    state = dict(
        python=[version, list(mt), gauss],
        numpy=list(np.random.get_state()),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
        state['cuda_current'] = torch.cuda.current_device()
    return state


def _cpu_bytes(state: Tensor) -> Tensor:
    """A generator state as the CPU ``uint8`` tensor that torch's setters
    accept.

    ``Runner.resume`` maps every tensor of the checkpoint to the GPU, the
    saved generator states included, and ``torch.set_rng_state`` refuses
    anything but a CPU ByteTensor.
    """
    return state.to(device='cpu', dtype=torch.uint8).contiguous()


def _set_cuda_rng_states(states: List[Tensor],
                         saved_current: Optional[int]) -> None:
    """Restore the CUDA generators that exist in this process.

    A checkpoint holds one state per device its process saw. Where this
    process sees as many devices or more, each gets its own state back.
    Where it sees fewer (torchrun saw every GPU of the node, Slurm gives one
    per task), this process's current device gets the state of the device
    its rank drew from when saving (``cuda_current``), the other visible
    devices the state of the same index, and a warning names the states
    left out.
    """
    count = torch.cuda.device_count()
    if len(states) <= count:
        for index, state in enumerate(states):
            torch.cuda.set_rng_state(_cpu_bytes(state), index)
        return
    source = list(range(count))
    current = torch.cuda.current_device()
    if saved_current is not None and 0 <= saved_current < len(states) \
            and 0 <= current < count:
        source[current] = saved_current
    for index, saved in enumerate(source):
        torch.cuda.set_rng_state(_cpu_bytes(states[saved]), index)
    left = sorted(set(range(len(states))) - set(source))
    print_log(
        f'RNGStateHook: the checkpoint holds the CUDA generator states of '
        f'{len(states)} devices, this process sees {count}; restored those '
        f'of saved devices {source}, not those of {left}. A process that '
        'draws on another device than when saving is not bit-identical to '
        'an uninterrupted run',
        logger='current',
        level=30)


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned.

    Tensors may come back on any device and in any dtype holding the bytes
    (a checkpoint resumed onto a GPU); they are set as CPU ``uint8``.
    """
    version, mt, gauss = state['python']
    random.setstate((version, tuple(mt), gauss))
    np.random.set_state(tuple(state['numpy']))
    torch.set_rng_state(_cpu_bytes(state['torch']))
    if 'cuda' in state and torch.cuda.is_available():
        _set_cuda_rng_states(state['cuda'], state.get('cuda_current'))


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the RNG states with each checkpoint and restore them on resume.

    Priority 80: after every ``LOW`` hook of an iteration or epoch and
    before ``CheckpointHook`` (``VERY_LOW``, 90), so the snapshot is the
    state the checkpoint is taken at.
    """

    priority = 80

    def __init__(self) -> None:
        self._snapshot: Optional[List[dict]] = None
        self._pending: Optional[List[dict]] = None
        self._val_state: Optional[dict] = None

    # ------------------------------------------------------------- saving
    def _checkpoint_hook(self, runner) -> Optional[CheckpointHook]:
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook):
                return hook
        return None

    def _take_snapshot(self, runner) -> None:
        state = get_rng_state()
        self._snapshot = all_gather_object(state) if is_distributed() \
            else [state]

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Snapshot when an iteration-based checkpoint may follow."""
        ckpt = self._checkpoint_hook(runner)
        if ckpt is not None and ckpt.by_epoch:
            return
        due = ckpt is None or not is_distributed() or \
            self.every_n_train_iters(runner, ckpt.interval) or \
            self.is_last_train_iter(runner)
        if due:
            self._take_snapshot(runner)

    def after_train_epoch(self, runner) -> None:
        """Snapshot at the end of every epoch (once per epoch: cheap)."""
        self._take_snapshot(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Put the snapshot into ``meta['rng_state']`` (rank 0 saves)."""
        if self._snapshot is not None:
            checkpoint.setdefault('meta', {})['rng_state'] = self._snapshot

    # ---------------------------------------------------------- restoring
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved states until the resumed loop starts.

        A checkpoint loaded with ``load_from`` (not resumed) starts at
        iteration 0 and its states are never applied.
        """
        self._pending = checkpoint.get('meta', {}).get('rng_state')

    def _restore(self, runner) -> None:
        states, self._pending = self._pending, None
        if not states or runner.iter == 0:
            return
        rank, world = get_rank(), runner.world_size
        if len(states) != world:
            print_log(
                f'RNGStateHook: the checkpoint was written by a run of '
                f'{len(states)} processes and this run has {world}: the '
                'saved RNG states are not restored, the random draws (data '
                "augmentation, region mixup, dropout) follow this run's "
                'seed instead, and the resumed run is not bit-identical to '
                f'an uninterrupted one. Resume on {len(states)} processes '
                'for an exact continuation',
                logger='current',
                level=30)
            return
        set_rng_state(states[rank])
        print_log(
            f'RNGStateHook: RNG states restored (iteration '
            f'{runner.iter})',
            logger='current')

    def before_train_epoch(self, runner) -> None:
        """Epoch-based loops: restore before the epoch's data iterator."""
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            self._restore(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Iteration-based loops: restore before the first resumed step."""
        if self._pending is not None:
            self._restore(runner)

    # ---------------------------------------------------- neutral validation
    def before_val(self, runner) -> None:
        """Save the generators so that validation does not move them."""
        self._val_state = get_rng_state()

    def after_val(self, runner) -> None:
        """Put the generators back as they were before validation."""
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None
