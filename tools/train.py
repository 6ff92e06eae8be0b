# Train a model from a config: the shape of mmsegmentation 1.x's tools/train.py.
import argparse
import logging

from mmengine.logging import print_log

from rca_mm.utils.tool_utils import (add_common_args, build_runner,
                                     finish_distributed, load_config,
                                     parse_args)
from rca_mm.utils.workdir_lock import lock_dir


def main():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
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
    add_common_args(parser)
    args = parse_args(parser)

    cfg = load_config(args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume

    # One run per work dir: a second one would overwrite its checkpoints.
    with lock_dir(cfg.work_dir, cfg.launcher, what='work dir (--work-dir)'):
        build_runner(cfg).train()
        finish_distributed()


if __name__ == '__main__':
    main()
