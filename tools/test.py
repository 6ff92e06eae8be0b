# Test a model and export its predictions, in the shape of mmsegmentation
# 1.x's tools/test.py:
#   python tools/test.py CONFIG CHECKPOINT [--out DIR [--save-cams]]
#                        [--show-dir DIR] [--tta] [--amp]
# rca_mm adds: --cfg-options checked before merging, a checkpoint that does
# not fit the model refused, one export per --out dir (a lock), exit status
# 1 when some images could not be written (docs/reliability.md).
import argparse
import sys

from rca_mm.apis import num_failed, run_test
from rca_mm.engine.runner_builder import add_runner_args, parse_runner_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics '
        '(default: the config\'s work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--out',
        help='directory where the test evaluator writes its outputs '
        '(predictions, pseudo labels); held by this run alone. Exits 1 when '
        'some images could not be written; running the same command again '
        'writes every image again')
    parser.add_argument(
        '--save-cams',
        action='store_true',
        help='with --out and a stage-1 config: also write each image\'s '
        'CAMs to DIR/cams/<name>.npz (for '
        'tools/analysis_tools/sweep_bg_threshold.py)')
    parser.add_argument(
        '--metrics-json',
        help='also write the returned metrics to this JSON file (atomic)')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--show-dir', help='directory to save drawn predictions in')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per --show')
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='test with automatic mixed precision: each test step runs '
        'under autocast on the model\'s device (float16 on CUDA, bfloat16 '
        'on CPU)')
    add_runner_args(parser)
    return parse_runner_args(parser)


def main() -> None:
    # The options' names are run_test's keyword arguments.
    metrics = run_test(**vars(parse_args()))
    if num_failed(metrics):
        sys.exit(1)


if __name__ == '__main__':
    main()
