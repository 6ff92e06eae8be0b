"""Checkpoints that survive a kill during saving.

mmengine's ``CheckpointHook`` (0.10.7), on each save:

1. removes the oldest kept checkpoint when ``max_keep_ckpts`` are kept,
2. writes ``epoch_N.pth`` with a plain ``open(..., 'wb')``,
3. rewrites ``last_checkpoint`` (the file ``--resume`` reads) in place.

A process killed in step 2 leaves a truncated ``epoch_N.pth``; one killed in
step 3 an empty ``last_checkpoint``; and with ``max_keep_ckpts=1`` the only
usable checkpoint is deleted before its successor exists.
:class:`AtomicCheckpointHook` keeps mmengine's options and file names and
changes only the order and the writes: the checkpoint goes through
:class:`~rca_mm.fileio.AtomicLocalBackend` (temporary file, fsync,
``os.replace``), ``last_checkpoint`` is replaced atomically after it, and the
outdated checkpoint is removed last. A kill at any point leaves
``last_checkpoint`` naming a complete checkpoint.
"""
import contextlib
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from rca_mm.fileio import AtomicLocalBackend, atomic_open
from rca_mm.registry import HOOKS


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic writes and removal after saving.

    Takes every argument of mmengine's ``CheckpointHook``. When neither
    ``backend_args`` nor ``file_client_args`` is given and ``out_dir`` is a
    local path, checkpoints are written with
    ``backend_args=dict(backend='atomic_local')``; other backends (e.g.
    ``s3://``) are used as configured, their writes as atomic as the store
    makes them.

    Args:
        out_dir (str, optional): where to save; default the work dir.
        backend_args (dict, optional): mmengine file backend arguments.
            Default: None (atomic local writes, see above).
        **kwargs: the other ``CheckpointHook`` arguments (``interval``,
            ``by_epoch``, ``max_keep_ckpts``, ``save_last``, ...).
    """

    def __init__(self,
                 *,
                 out_dir: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 **kwargs) -> None:
        local = out_dir is None or '://' not in str(out_dir)
        if backend_args is None and kwargs.get('file_client_args') is None \
                and local:
            backend_args = dict(backend=AtomicLocalBackend.registered_name)
        super().__init__(out_dir=out_dir, backend_args=backend_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save ``step``, point ``last_checkpoint`` at it, then prune."""
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        with atomic_open(osp.join(runner.work_dir, 'last_checkpoint'),
                         'w') as f:
            f.write(self.last_ckpt)
        if outdated is not None:
            self._remove(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(outdated)))

    def _remove(self, path: str) -> None:
        """Remove an outdated checkpoint (a file, or a DeepSpeed folder)."""
        if self.file_backend.isfile(path):
            with contextlib.suppress(FileNotFoundError):
                self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)
