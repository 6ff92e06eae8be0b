"""Generate SynthNet, SynthVOC's ImageNet, in mmpretrain's layout.

Example::

    python tools/dataset_converters/synthnet.py --out data/synthnet

See docs/synthnet.md for what the images contain and why.
"""
import argparse
import sys
import time

from rca_mm.datasets.synthetic import generate_synthnet


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate SynthNet in mmpretrain CustomDataset layout.')
    parser.add_argument('--out', required=True, help='dataset root to write')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--num-classes', type=int, default=100, help='classes (50..1050)')
    parser.add_argument(
        '--num-train-per-class',
        type=int,
        default=80,
        help='training images per class')
    parser.add_argument(
        '--num-val-per-class',
        type=int,
        default=10,
        help='validation images per class')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(112, 112),
        metavar=('H', 'W'),
        help='image height and width')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    try:
        counts = generate_synthnet(
            args.out,
            seed=args.seed,
            num_classes=args.num_classes,
            num_train_per_class=args.num_train_per_class,
            num_val_per_class=args.num_val_per_class,
            size=args.size,
            nproc=args.nproc)
    except ValueError as e:
        sys.exit(f'synthnet.py: error: {e}')
    print(f'SynthNet in {args.out}: {counts["train"]} train, '
          f'{counts["val"]} val, {counts["num_classes"]} classes; '
          f'{time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
