# Browse a dataset as the model receives it: each sample at the end of the
# pipeline (augmentation included), drawn as one row of titled panels, in
# the shape of mmsegmentation 1.x's tools/analysis_tools/browse_dataset.py:
#   python tools/analysis_tools/browse_dataset.py CONFIG \
#       [--output-dir DIR] [--not-show] [--show-interval 2] \
#       [--split train|val|test] [--max-images N] [--seed S] \
#       [--cfg-options K=V ...]
# Stage 1 (PackWSSSInputs): image | tags | saliency | saliency on image
# (| label when the pipeline loads one); stage 2 (PackSegInputs): image |
# classes | label (GT or pseudo label) in the dataset's palette. A saliency
# map or label that a transform moved differently from the image shows as a
# shifted overlay. Panels go to DIR/<image name>.png.
import argparse
import os.path as osp

import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.utils import ProgressBar

from rca_mm.engine.config_checks import check_cfg_options
from rca_mm.engine.runner_builder import add_cfg_options_arg
from rca_mm.fileio import atomic_write
from rca_mm.registry import DATASETS, VISUALIZERS
from rca_mm.utils import register_all_modules
from rca_mm.visualization.dataset_browser import draw_sample


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Browse a dataset')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--output-dir',
        default=None,
        type=str,
        help='If there is no display interface, you can save it')
    parser.add_argument('--not-show', default=False, action='store_true')
    parser.add_argument(
        '--show-interval',
        type=float,
        default=2,
        help='the interval of show (s)')
    parser.add_argument(
        '--split',
        default='train',
        choices=('train', 'val', 'test'),
        help='the <split>_dataloader.dataset of the config (default: train, '
        'with its augmentation)')
    parser.add_argument(
        '--max-images',
        type=int,
        default=None,
        help='browse the first N samples only')
    parser.add_argument(
        '--seed',
        type=int,
        default=None,
        help='seed of the random augmentation (default: unseeded)')
    add_cfg_options_arg(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.not_show and args.output_dir is None:
        raise SystemExit('--not-show without --output-dir draws nothing; '
                         'give --output-dir DIR')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules()
    if args.seed is not None:
        from mmengine.runner import set_random_seed
        set_random_seed(args.seed)

    loader = cfg.get(f'{args.split}_dataloader')
    if loader is None or 'dataset' not in loader:
        raise SystemExit(f'{args.config} has no {args.split}_dataloader.'
                         'dataset to browse')
    dataset = DATASETS.build(loader.dataset)
    # The config's visualizer (its palette settings) when it is rca_mm's;
    # another (mmpretrain's, of the SynthNet pretraining) cannot draw the
    # panels, and a default WSSSLocalVisualizer does.
    vis_cfg = dict(cfg.get('visualizer') or {}, name='browse_dataset')
    if vis_cfg.get('type') not in ('WSSSLocalVisualizer',
                                   'rca_mm.WSSSLocalVisualizer'):
        vis_cfg = dict(type='WSSSLocalVisualizer', name='browse_dataset')
    visualizer = VISUALIZERS.build(dict(vis_cfg, vis_backends=None))
    visualizer.dataset_meta = dataset.metainfo
    ignore_index = getattr(dataset, 'ignore_index', 255)

    count = len(dataset) if args.max_images is None else min(
        args.max_images, len(dataset))
    progress_bar = ProgressBar(count)
    for idx in range(count):
        item = dataset[idx]
        drawn = draw_sample(visualizer, item, ignore_index)
        name = osp.splitext(osp.basename(item['data_samples'].img_path))[0]
        if not args.not_show:
            visualizer.show(drawn, win_name=name, wait_time=args.show_interval)
        if args.output_dir is not None:
            bgr = np.ascontiguousarray(drawn[..., ::-1])
            atomic_write(
                osp.join(args.output_dir, name + '.png'),
                lambda tmp: mmcv.imwrite(bgr, tmp))
        progress_bar.update()


if __name__ == '__main__':
    main()
