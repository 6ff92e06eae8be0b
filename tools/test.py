# Test a model and export its predictions, in the shape of mmsegmentation
# 1.x's tools/test.py:
#   python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--tta]
import argparse
import contextlib
import logging
import sys
from typing import Optional

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import print_log

from rca_mm.fileio import write_json_atomic
from rca_mm.utils.tool_utils import (add_common_args, build_runner,
                                     finish_distributed, load_config,
                                     parse_args)
from rca_mm.utils.workdir_lock import lock_dir


def enable_drawing(cfg: Config, show: bool, show_dir: Optional[str],
                   wait_time: float) -> None:
    """Make the config's visualization hook draw (and show or save)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError(
            '--show/--show-dir need default_hooks.visualization in the '
            "config, e.g. dict(type='SegVisualizationHook') as in "
            'configs/_base_/default_runtime.py')
    hook.draw = True
    if show:
        hook.show, hook.wait_time = True, wait_time
    if show_dir:
        cfg.visualizer.save_dir = show_dir


def use_tta(cfg: Config) -> None:
    """Wrap the model in ``cfg.tta_model`` and test with ``tta_pipeline``."""
    for key in ('tta_model', 'tta_pipeline'):
        if cfg.get(key) is None:
            raise KeyError(f'--tta needs `{key}` in the config (see '
                           'configs/_base_/datasets/voc12_aug_seg.py)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def num_failed(metrics: dict) -> int:
    """The images an evaluator could not write (``num_failed``, any
    prefix)."""
    return int(sum(v for k, v in metrics.items()
                   if k.split('/')[-1] == 'num_failed'))


def main():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='directory where the test evaluator writes its outputs '
        '(predictions, pseudo labels); held by this run alone. Exits 1 when '
        'some images could not be written; running the same command again '
        'writes only those')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--show-dir', help='directory to save drawn predictions in')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per --show')
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--metrics-json',
        help='also write the returned metrics to this JSON file (atomic)')
    add_common_args(parser)
    args = parse_args(parser)

    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_drawing(cfg, args.show, args.show_dir, args.wait_time)
    if args.tta:
        use_tta(cfg)
    # mmseg's convention: the metric's `output_dir`, results kept.
    if args.out is not None:
        cfg.test_evaluator.output_dir = args.out
        cfg.test_evaluator.keep_results = True

    # One export per --out dir.
    with (lock_dir(args.out, cfg.launcher, what='output dir (--out)')
          if args.out is not None else contextlib.nullcontext()):
        metrics = build_runner(cfg, check_load_from=True).test()
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
