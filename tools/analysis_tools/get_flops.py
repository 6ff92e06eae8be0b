# FLOPs (multiply-adds) and parameters of a config's model at one input
# size, through mmengine.analysis, in the shape of mmsegmentation 1.x's
# tools/analysis_tools/get_flops.py:
#   python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] \
#       [--cfg-options K=V ...] [--depth 1] [--table]
# Stage-1 classifiers (CAMClassifier: the final CAMs; with RCAHead, O of
# Eq. 10 with K prototypes per class) and stage-2 segmentors
# (EncoderDecoder: the decode head's logits), inference forward at batch 1.
# No weights are read; see rca_mm/utils/model_complexity.py for what is
# counted.
import argparse

from mmengine.config import Config, DictAction

from rca_mm.engine.config_checks import check_cfg_options
from rca_mm.utils import register_all_modules
from rca_mm.utils.model_complexity import (complexity_model, complexity_table,
                                           format_count, input_shape_of,
                                           model_complexity)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Get the FLOPs and parameters of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[321, 321],
        help='input image size: H, or H W (default: 321 321, the paper\'s '
        'crop)')
    parser.add_argument(
        '--depth',
        type=int,
        default=1,
        help='depth of the per-module lines (1: backbone, head)')
    parser.add_argument(
        '--table',
        action='store_true',
        help='also print mmengine\'s per-module table (depth 3)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    shape = input_shape_of(args.shape)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules()
    model = complexity_model(cfg)
    info = model_complexity(model, shape, max_depth=args.depth)
    line = '=' * 40
    print(line)
    print(f'Config: {args.config}')
    print(f'Model: {type(model).__name__}, input shape: {shape}')
    print(f'Flops: {format_count(info["flops"])} '
          f'({info["flops"]:,} multiply-adds)')
    print(f'Params: {format_count(info["params"])} ({info["params"]:,})')
    for name, flops in info['flops_by_module'].items():
        if name:
            params = info['params_by_module'].get(name, 0)
            print(f'  {name}: {format_count(flops)} flops, '
                  f'{format_count(params)} params')
    if info['unsupported']:
        print('Not counted (no flop formula): ' +
              ', '.join(f'{k} x{v}'
                        for k, v in sorted(info['unsupported'].items())))
    print(line)
    if args.table:
        print(complexity_table(model, shape, max_depth=3))
    print('Counted by tracing one forward pass; check that every operator '
          'you care about is supported before using the numbers in a '
          'paper.')


if __name__ == '__main__':
    main()
