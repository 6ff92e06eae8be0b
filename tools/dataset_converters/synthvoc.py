"""Generate SynthVOC, the procedural WSSS benchmark, in PASCAL VOC layout.

Example::

    python tools/dataset_converters/synthvoc.py --out data/synthvoc

See docs/synthvoc.md for what the images contain and why.
"""
import argparse
import sys
import time

from rca_mm.datasets.synthetic import generate_synthvoc


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate SynthVOC in PASCAL VOC layout.')
    parser.add_argument('--out', required=True, help='dataset root to write')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--num-train', type=int, default=2000, help='images in train_aug')
    parser.add_argument(
        '--num-val', type=int, default=300, help='images in val')
    parser.add_argument(
        '--num-train-subset',
        type=int,
        default=300,
        help='the first train_aug images that also form train.txt')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(128, 128),
        metavar=('H', 'W'),
        help='image height and width')
    parser.add_argument(
        '--num-classes', type=int, default=10, help='foreground classes')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    try:
        counts = generate_synthvoc(
            args.out,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val,
            num_train_subset=args.num_train_subset,
            size=args.size,
            num_classes=args.num_classes,
            nproc=args.nproc)
    except ValueError as e:
        sys.exit(f'synthvoc.py: error: {e}')
    print(f'SynthVOC in {args.out}: {counts["train_aug"]} train_aug '
          f'({counts["train"]} in train), {counts["val"]} val, '
          f'{counts["num_classes"]} classes; {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
