"""Draw the RCA paper's Fig. 3 and Fig. 4 from trained stage-1 classifiers.

Fig. 3 (``--fig3``): for each image, its ground truth and the affinity
``S = softmax(F Q^T)`` (Eq. 7) between its pixels and the prototypes of its
tagged classes, the ``--num-prototypes`` of each class with the largest
total affinity over the image (with ``--any-class``: the
``--num-prototypes`` of any class), one heatmap per prototype (jet from
S = 0 to 1).

Fig. 4 (``--fig4``): for each image and tag, the ground truth, the
baseline's CAM, and RCA's CAMs of the first classifier (P, Eq. 1) and of
the aggregated features (O, Eq. 10).

All maps are of one scale, unflipped, made with each model's
``test_cfg.activation`` and max-normalised per class (``CAMClassifier.
predict`` at scale 1); each CAM heatmap is min-max normalised for its
colours. The images are looked up by name in the RCA config's
``test_dataloader`` dataset.

Usage::

    python tools/analysis_tools/draw_rca_figures.py RCA_CONFIG RCA_CKPT \\
        --images NAME [NAME ...] [--fig3 FIG3.png] [--fig4 FIG4.png \\
        --baseline-config CONFIG --baseline-checkpoint CKPT] \\
        [--num-prototypes 3] [--any-class] [--baseline-name EPS] \\
        [--device cpu] [--cfg-options KEY=VALUE ...]

``--cfg-options`` applies to both configs, e.g.
``test_dataloader.dataset.data_root=DIR``.
"""
import argparse
from typing import List, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate

from rca_mm.apis import init_model
from rca_mm.fileio import atomic_write_bytes, read_image
from rca_mm.registry import DATASETS
from rca_mm.visualization import (WSSSLocalVisualizer, affinity_panels,
                                  baseline_maps, cams_at, comparison_panels,
                                  rca_maps, select_prototypes)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Draw RCA's Fig. 3 (prototype affinity) and Fig. 4 "
        '(baseline CAM, P and O)')
    parser.add_argument('config', help='config of the RCA classifier')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument(
        '--images',
        nargs='+',
        required=True,
        help='image names (file stems) of the test dataset')
    parser.add_argument('--fig3', help='PNG file to write Fig. 3 to')
    parser.add_argument('--fig4', help='PNG file to write Fig. 4 to')
    parser.add_argument(
        '--baseline-config', help='config of the baseline (Fig. 4)')
    parser.add_argument(
        '--baseline-checkpoint', help='its checkpoint (Fig. 4)')
    parser.add_argument(
        '--baseline-name',
        default='baseline',
        help='the baseline in the titles of Fig. 4')
    parser.add_argument(
        '--num-prototypes',
        type=int,
        default=3,
        help='prototypes per tagged class in Fig. 3 (in all, with '
        '--any-class)')
    parser.add_argument(
        '--any-class',
        action='store_true',
        help='Fig. 3: the prototypes of any class that take the most '
        'affinity in the image, instead of those of its tags')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of both configs, key=value')
    args = parser.parse_args(argv)
    if not (args.fig3 or args.fig4):
        parser.error('give --fig3 and/or --fig4')
    if args.fig4 and not (args.baseline_config and args.baseline_checkpoint):
        parser.error('--fig4 needs --baseline-config and '
                     '--baseline-checkpoint')
    if args.num_prototypes < 1:
        parser.error('--num-prototypes must be at least 1')
    return args


def load_classifier(config: str, checkpoint: str, cfg_options,
                    device: str) -> Tuple[Config, torch.nn.Module]:
    """The config and the classifier of ``config`` with ``checkpoint``'s
    weights, in eval mode (:func:`rca_mm.apis.init_model`: the backbone's
    pretrained ``init_cfg`` is not read)."""
    model = init_model(config, checkpoint, device, cfg_options)
    return model.cfg, model


def load_samples(cfg: Config, names: List[str]) -> Tuple[List[dict], dict]:
    """The test pipeline's output (preprocessor input) for each named
    image of ``cfg.test_dataloader.dataset``, in order, and the dataset's
    metainfo."""
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    index = {
        dataset.get_data_info(i)['img_name']: i
        for i in range(len(dataset))
    }
    missing = [n for n in names if n not in index]
    if missing:
        raise KeyError(f'--images {missing} are not in '
                       f'test_dataloader.dataset ({len(dataset)} images, '
                       f'ann_file {cfg.test_dataloader.dataset.ann_file})')
    return [dataset[index[n]] for n in names], dataset.metainfo


def preprocess(model, sample: dict,
               device: str) -> Tuple[torch.Tensor, object]:
    """The model's normalised input and the sample's data sample."""
    data = model.data_preprocessor(pseudo_collate([sample]), False)
    return data['inputs'].to(device), data['data_samples'][0]


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg, rca = load_classifier(args.config, args.checkpoint, args.cfg_options,
                               args.device)
    baseline = None
    if args.fig4:
        _, baseline = load_classifier(args.baseline_config,
                                      args.baseline_checkpoint,
                                      args.cfg_options, args.device)
    samples, metainfo = load_samples(cfg, args.images)
    visualizer = WSSSLocalVisualizer.get_instance('draw_rca_figures')
    visualizer.dataset_meta = metainfo
    fig3_rows, fig4_rows = [], []
    for sample in samples:
        inputs, data_sample = preprocess(rca, sample, args.device)
        image, _ = read_image(
            data_sample.img_path, channel_order='rgb', exif_orientation=True)
        size = image.shape[:2]
        tags = np.flatnonzero(data_sample.gt_img_labels.cpu().numpy() > 0.5)
        gt = None
        if 'gt_sem_seg' in data_sample:
            gt = data_sample.gt_sem_seg.data[0].cpu().numpy()
        maps = rca_maps(rca, inputs)
        if args.fig3:
            chosen = select_prototypes(maps['affinity'][0], maps['valid'],
                                       None if args.any_class else tags,
                                       args.num_prototypes)
            fig3_rows.append(
                affinity_panels(visualizer, image, maps['affinity'][0], chosen,
                                gt))
        if args.fig4:
            # Each model normalises the image with its own preprocessor.
            base_inputs, _ = preprocess(baseline, sample, args.device)
            cams = [(f'{args.baseline_name} CAM',
                     cams_at(baseline, baseline_maps(baseline, base_inputs),
                             size)[0]),
                    ('RCA P (Eq. 1)', cams_at(rca, maps['p'], size)[0]),
                    ('RCA O (Eq. 10)', cams_at(rca, maps['o'], size)[0])]
            fig4_rows += [
                comparison_panels(visualizer, image, c, cams, gt) for c in tags
            ]
    for out, rows in ((args.fig3, fig3_rows), (args.fig4, fig4_rows)):
        if out:
            # Lossless at the smallest size (heatmaps compress poorly).
            ok, png = cv2.imencode('.png',
                                   mmcv.rgb2bgr(visualizer.draw_panels(rows)),
                                   [cv2.IMWRITE_PNG_COMPRESSION, 9])
            if not ok:
                raise ValueError(f'could not encode the figure for {out}')
            atomic_write_bytes(out, png.tobytes())
            print(f'wrote {out}')


if __name__ == '__main__':
    main()
