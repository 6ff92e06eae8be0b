"""Make a release file from a training checkpoint, as mmseg's publish_model.

Keeps the weights (``state_dict``) and ``meta``; drops the optimizer, the
schedulers, the message hub and the RNG states (``meta['rng_state']``,
written by ``RNGStateHook``), which only ``--resume`` needs. RCA's region
memory bank is emptied as well (inference uses only the prototypes,
Eq. 7-10): on VOC with WideResNet-38 the bank is about 250 MiB
of the file (docs/performance.md). ``--keep-bank`` keeps it, for a file
meant for fine-tuning. The output name gets the first 8 hex digits of its
SHA-256, as mmseg's release files::

    python tools/model_converters/publish_model.py \\
        work_dirs/rca_eps_r38_voc/epoch_15.pth rca_eps_r38_voc.pth
    # -> rca_eps_r38_voc-<sha256[:8]>.pth

``--no-sha`` writes ``OUT.pth`` as named, for a file that configs name, such
as the SynthNet-pretrained backbone the SynthVOC configs start from.

The input is read with ``torch.load(weights_only=True)`` and the allow-list
of ``rca_mm.utils.safe_checkpoint``; the output holds tensors and plain data
only and is written atomically.
"""
import argparse
import hashlib
import os
import os.path as osp

import torch

from rca_mm.fileio import atomic_open
from rca_mm.models.memory import empty_bank_state
from rca_mm.utils.safe_checkpoint import safe_torch_load

# Where RNGStateHook keeps the generators' states in a checkpoint's meta
# (rca_mm/engine/hooks/rng_state_hook.py): only --resume needs them.
RNG_STATE_KEY = 'rng_state'


def publish(checkpoint: dict, keep_bank: bool = False) -> dict:
    """The release content of a training checkpoint.

    Args:
        checkpoint (dict): an mmengine checkpoint (``state_dict``, ``meta``,
            ``optimizer``, ...) or a bare state dict.
        keep_bank (bool): keep the memory bank's entries. Default: False.

    Returns:
        dict: ``state_dict`` (bank emptied unless ``keep_bank``) and
        ``meta`` when the input has one, without ``RNGStateHook``'s
        ``rng_state`` (the input is not changed).
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
            key: value
            for key, value in checkpoint['meta'].items()
            if key != RNG_STATE_KEY
        }
    return out


def main():
    parser = argparse.ArgumentParser(
        description='Strip a checkpoint to its weights for release')
    parser.add_argument('in_file', help='training checkpoint')
    parser.add_argument(
        'out_file', help='output .pth (sha256 appended unless --no-sha)')
    parser.add_argument('--keep-bank', action='store_true',
                        help='keep the memory bank entries')
    parser.add_argument('--no-sha', action='store_true',
                        help='write out_file as named (no sha256 suffix)')
    args = parser.parse_args()
    if not args.out_file.endswith('.pth'):
        parser.error(f'out_file {args.out_file!r} must end with .pth')
    if not osp.isfile(args.in_file):
        parser.error(f'in_file {args.in_file!r} does not exist')
    released = publish(safe_torch_load(args.in_file, map_location='cpu'),
                       args.keep_bank)
    final = args.out_file if args.no_sha else args.out_file + '.unhashed'
    with atomic_open(final, 'wb') as f:
        torch.save(released, f)
    if not args.no_sha:
        with open(final, 'rb') as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        hashed = f'{args.out_file[:-len(".pth")]}-{sha[:8]}.pth'
        os.replace(final, hashed)
        final = hashed
    print(f'{args.in_file} ({osp.getsize(args.in_file) / 2**20:.1f} MiB) '
          f'-> {final} ({osp.getsize(final) / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
