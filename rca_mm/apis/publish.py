"""Release files of trained models, as mmseg's ``publish_model``.

.. code:: text

    publish(checkpoint)              state_dict (memory bank emptied) + meta
                                     without the RNG states; no optimizer,
                                     schedulers or message hub
    publish_checkpoint(in, out)      -> out-<sha256[:8]>.pth, atomically
    release_run(work_dir, ...)       the pipeline's stage-1 and stage-2
                                     checkpoints, their logs and the summary
                                     -> WORK_DIR/release/

RCA's region memory bank holds training state only (inference uses the
prototypes, Eq. 7-10), so a release file keeps its keys but no entries
(:func:`~rca_mm.models.memory.empty_bank_state`): it loads strictly into
the same config's model and gives the same CAMs.
"""
import hashlib
import os
import os.path as osp
import re
import shutil
from typing import Dict, Optional, Sequence, Tuple

import torch

from rca_mm.fileio import atomic_open, write_json_atomic
from rca_mm.models.memory import empty_bank_state
from rca_mm.utils.safe_checkpoint import safe_torch_load

#: The ``meta`` key of RNGStateHook's snapshot
#: (rca_mm/engine/hooks/rng_state_hook.py): needed by ``--resume`` only.
RNG_STATE_KEY = 'rng_state'


def publish(checkpoint: dict, keep_bank: bool = False) -> dict:
    """The release content of a training checkpoint.

    Args:
        checkpoint (dict): an mmengine checkpoint (``state_dict``, ``meta``,
            ``optimizer``, ...) or a bare state dict.
        keep_bank (bool): keep the memory bank's entries. Default: False.

    Returns:
        dict: ``state_dict`` (bank emptied unless ``keep_bank``) and
        ``meta`` without the RNG states, when the input has one.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError('expected a checkpoint dict or a state dict, got '
                         f'{type(checkpoint).__name__}')
    state = checkpoint.get('state_dict', checkpoint)
    if not keep_bank:
        state = empty_bank_state(state)
    out = dict(state_dict=state)
    if 'meta' in checkpoint:
        out['meta'] = {
            k: v
            for k, v in checkpoint['meta'].items() if k != RNG_STATE_KEY
        }
    return out


def publish_checkpoint(in_file: str,
                       out_file: str,
                       *,
                       keep_bank: bool = False,
                       sha: bool = True) -> str:
    """Write the release file of ``in_file``.

    Args:
        in_file (str): the training checkpoint.
        out_file (str): the output ``.pth``; with ``sha`` the written name
            is ``<out_file without .pth>-<sha256[:8]>.pth``.
        keep_bank (bool): keep the memory bank's entries. Default: False.
        sha (bool): append the first 8 hex digits of the file's SHA-256.
            Default: True.

    Returns:
        str: the written file.

    Raises:
        ValueError: ``out_file`` does not end with ``.pth``.
        FileNotFoundError: ``in_file`` does not exist.
    """
    if not out_file.endswith('.pth'):
        raise ValueError(f'out_file {out_file!r} must end with .pth')
    if not osp.isfile(in_file):
        raise FileNotFoundError(f'in_file {in_file!r} does not exist')
    released = publish(safe_torch_load(in_file, map_location='cpu'), keep_bank)
    final = out_file if not sha else out_file + '.unhashed'
    with atomic_open(final, 'wb') as f:
        torch.save(released, f)
    if sha:
        hashed = f'{out_file[:-len(".pth")]}-{file_sha256(final)[:8]}.pth'
        os.replace(final, hashed)
        final = hashed
    return final


def file_sha256(path: str) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def release_run(work_dir: str,
                models: Sequence[Tuple[str, str, str]],
                log_steps: Sequence[str],
                summary: Optional[str] = None) -> Dict:
    """Publish a pipeline's checkpoints with their logs under
    ``work_dir/release/``.

    Each model's file is named after its config,
    ``<config name>-<sha256[:8]>.pth``; an earlier release file of the same
    config with another hash is removed. The logs of ``log_steps``
    (``work_dir/logs/<step>.log``) are copied to ``release/logs/``, the
    summary to ``release/summary.json``, and ``release/manifest.json`` lists
    every file with its SHA-256.

    Args:
        work_dir (str): the pipeline's work dir.
        models (Sequence[tuple]): ``(step, config, checkpoint)`` of each
            trained model.
        log_steps (Sequence[str]): the steps whose logs go with them.
        summary (str, optional): the summary file to copy. Default: None.

    Returns:
        dict: the manifest: ``models`` (step -> file, config, source,
        sha256), ``logs`` and ``summary`` (files relative to the release
        dir).
    """
    out = osp.join(work_dir, 'release')
    os.makedirs(osp.join(out, 'logs'), exist_ok=True)
    manifest: Dict = dict(models={}, logs=[], summary=None)
    for step, config, checkpoint in models:
        stem = osp.splitext(osp.basename(config))[0]
        final = publish_checkpoint(checkpoint, osp.join(out, stem + '.pth'))
        pattern = re.compile(re.escape(stem) + r'-[0-9a-f]{8}\.pth$')
        for name in os.listdir(out):
            if pattern.match(name) and name != osp.basename(final):
                os.remove(osp.join(out, name))
        manifest['models'][step] = dict(
            file=osp.basename(final),
            config=config,
            source=osp.relpath(checkpoint, work_dir),
            sha256=file_sha256(final))
    for step in log_steps:
        log = osp.join(work_dir, 'logs', f'{step}.log')
        if osp.isfile(log):
            _copy_atomic(log, osp.join(out, 'logs', f'{step}.log'))
            manifest['logs'].append(f'logs/{step}.log')
    if summary is not None and osp.isfile(summary):
        _copy_atomic(summary, osp.join(out, 'summary.json'))
        manifest['summary'] = 'summary.json'
    write_json_atomic(osp.join(out, 'manifest.json'), manifest)
    return manifest


def _copy_atomic(src: str, dst: str) -> None:
    with open(src, 'rb') as fin, atomic_open(dst, 'wb') as fout:
        shutil.copyfileobj(fin, fout)


__all__ = [
    'publish', 'publish_checkpoint', 'release_run', 'file_sha256',
    'RNG_STATE_KEY'
]
