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
only and is written atomically. The work is
:func:`rca_mm.apis.publish.publish_checkpoint`, which ``tools/run_pipeline.py``
uses for its ``release/`` directory too.
"""
import argparse
import os.path as osp

from rca_mm.apis.publish import publish_checkpoint


def main():
    parser = argparse.ArgumentParser(
        description='Strip a checkpoint to its weights for release')
    parser.add_argument('in_file', help='training checkpoint')
    parser.add_argument(
        'out_file', help='output .pth (sha256 appended unless --no-sha)')
    parser.add_argument(
        '--keep-bank',
        action='store_true',
        help='keep the memory bank entries')
    parser.add_argument(
        '--no-sha',
        action='store_true',
        help='write out_file as named (no sha256 suffix)')
    args = parser.parse_args()
    if not args.out_file.endswith('.pth'):
        parser.error(f'out_file {args.out_file!r} must end with .pth')
    if not osp.isfile(args.in_file):
        parser.error(f'in_file {args.in_file!r} does not exist')
    final = publish_checkpoint(
        args.in_file,
        args.out_file,
        keep_bank=args.keep_bank,
        sha=not args.no_sha)
    print(f'{args.in_file} ({osp.getsize(args.in_file) / 2**20:.1f} MiB) '
          f'-> {final} ({osp.getsize(final) / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
