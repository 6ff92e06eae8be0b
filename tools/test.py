# Test a model and export its predictions, in the shape of mmsegmentation
# 1.x's tools/test.py:
#   python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--tta]
#                        [--amp]
# rca_mm adds: --cfg-options checked before merging, a checkpoint that does
# not fit the model refused, one export per --out dir (a lock), exit status
# 1 when some images could not be written (docs/reliability.md).
import argparse
import contextlib
import logging
import sys

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import print_log

from rca_mm.engine.runner_builder import (add_runner_args, build_runner,
                                          load_config, parse_runner_args)
from rca_mm.fileio import write_json_atomic
from rca_mm.utils.dist_utils import finish_distributed
from rca_mm.utils.workdir_lock import lock_dir


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
        'writes only those')
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


def trigger_visualization_hook(cfg: Config,
                               args: argparse.Namespace) -> Config:
    """Make the config's visualization hook draw (and show or save)."""
    visualization_hook = cfg.default_hooks.get('visualization')
    if visualization_hook is None:
        raise KeyError(
            '--show/--show-dir need default_hooks.visualization in the '
            "config, e.g. dict(type='SegVisualizationHook') as in "
            'configs/_base_/default_runtime.py')
    visualization_hook['draw'] = True
    if args.show:
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer.save_dir = args.show_dir
    return cfg


def num_failed(metrics: dict) -> int:
    """The images an evaluator could not write (``num_failed``, any
    prefix)."""
    return int(
        sum(v for k, v in metrics.items() if k.split('/')[-1] == 'num_failed'))


def main() -> None:
    args = parse_args()

    # load config: Config.fromfile, --cfg-options (checked), launcher;
    # work_dir is determined in this priority: CLI > config > file name
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)

    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        for key in ('tta_model', 'tta_pipeline'):
            if cfg.get(key) is None:
                raise KeyError(f'--tta needs `{key}` in the config (see '
                               'configs/_base_/datasets/voc12_aug_seg.py)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    # enable automatic-mixed-precision test: mmengine's TestLoop runs each
    # test step under autocast (CUDA when available, else CPU)
    if args.amp:
        test_cfg = cfg.get('test_cfg') or dict(type='TestLoop')
        test_cfg['fp16'] = True
        cfg.test_cfg = test_cfg

    # add output_dir in metric
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    # one export per --out dir
    with (lock_dir(args.out, cfg.launcher, what='output dir (--out)')
          if args.out is not None else contextlib.nullcontext()):
        runner = build_runner(cfg, check_load_from=True)
        metrics = runner.test()
        if args.metrics_json and is_main_process():
            write_json_atomic(args.metrics_json, metrics)
        failed = num_failed(metrics)
        if failed and is_main_process():
            print_log(
                f'{failed} images failed (named above) and have no output; '
                'everything else is written. Fix the cause and run the same '
                'command again: the images already written are skipped.',
                logger='current',
                level=logging.ERROR)
        finish_distributed()
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()
