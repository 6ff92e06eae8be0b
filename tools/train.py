# Train a model from a config, in the shape of mmsegmentation 1.x's
# tools/train.py. rca_mm adds: --cfg-options keys and values are checked
# before merging, one run per work dir (a lock), a CPU-only distributed
# start-up and an orderly distributed teardown (docs/reliability.md).
import argparse

from rca_mm.apis import run_train
from rca_mm.engine.runner_builder import add_runner_args, parse_runner_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='the dir to save logs and models (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir '
        'automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        default=False,
        help='keep the per-process train_dataloader.batch_size on any '
        'number of processes and scale the learning rate linearly to the '
        'total batch (auto_scale_lr.base_batch_size is the config\'s). '
        'Without it the per-process batch is set so that the total stays '
        'the config\'s')
    add_runner_args(parser)
    return parse_runner_args(parser)


def main() -> None:
    # The options' names are run_train's keyword arguments.
    run_train(**vars(parse_args()))


if __name__ == '__main__':
    main()
