# Train a model from a config, in the shape of mmsegmentation 1.x's
# tools/train.py. rca_mm adds: --cfg-options keys and values are checked
# before merging, one run per work dir (a lock), a CPU-only distributed
# start-up and an orderly distributed teardown (docs/reliability.md).
import argparse
import logging

from mmengine.logging import print_log

from rca_mm.engine.runner_builder import (add_runner_args, build_runner,
                                          load_config, parse_runner_args)
from rca_mm.utils.dist_utils import finish_distributed
from rca_mm.utils.workdir_lock import lock_dir


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
    args = parse_args()

    # load config: Config.fromfile, --cfg-options (checked), launcher;
    # work_dir is determined in this priority: CLI > config > file name;
    # the total batch is the config's on any number of processes, or the
    # learning rate is scaled to it (--auto-scale-lr)
    cfg = load_config(
        args.config,
        args.cfg_options,
        args.work_dir,
        args.launcher,
        training=True,
        auto_scale_lr=args.auto_scale_lr)

    # enable automatic-mixed-precision training
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

    # resume training
    cfg.resume = args.resume

    # one run per work dir: a second one would overwrite its checkpoints
    with lock_dir(cfg.work_dir, cfg.launcher, what='work dir (--work-dir)'):
        runner = build_runner(cfg)
        runner.train()
        finish_distributed()


if __name__ == '__main__':
    main()
