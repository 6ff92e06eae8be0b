# Print the whole config after inheritance and --cfg-options, in the shape of
# mmsegmentation 1.x's tools/misc/print_config.py:
#   python tools/misc/print_config.py CONFIG [--cfg-options K=V ...] \
#       [--save-path FILE.py|.json|.yml]
# rca_mm adds: an unknown --cfg-options key is refused (as tools/train.py
# does), and the saved file is written atomically.
import argparse
import os.path as osp
import sys

from mmengine.config import Config

from rca_mm.engine.config_checks import check_cfg_options
from rca_mm.engine.runner_builder import add_cfg_options_arg
from rca_mm.fileio import atomic_write

SAVE_SUFFIXES = ('.py', '.json', '.yml', '.yaml')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the whole config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--save-path',
        default=None,
        help='also save the whole config to this file (.py, .json or .yml)')
    add_cfg_options_arg(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.save_path is not None and osp.splitext(
            args.save_path)[1] not in SAVE_SUFFIXES:
        sys.exit(f'--save-path {args.save_path!r}: the file must end with '
                 f'one of {SAVE_SUFFIXES} (the format to save in)')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')
    if args.save_path is not None:
        atomic_write(args.save_path, lambda tmp: cfg.dump(tmp))
        print(f'Config saved to {args.save_path}')


if __name__ == '__main__':
    main()
