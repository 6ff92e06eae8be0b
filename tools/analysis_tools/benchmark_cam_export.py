"""Benchmark CAM export (multi-scale + flip): images/s and where time goes.

The path of ``tools/test.py CONFIG CKPT --out DIR`` for a stage-1
classifier, run by hand so that each part is timed on its own:

.. code:: text

    data    next(test dataloader)            reading + pipeline
    model   model.test_step(batch)           preprocessor, predict:
                                             multi-scale + flip CAMs, the
                                             recipe (pred_sem_seg)
    metric  PseudoLabelMetric.process,       to_dict, score,
            PseudoLabelWriter.process        PNG write

The weights are random (timing does not depend on them). The data is a
SynthVOC generated into a temporary folder (``--image-size``,
``--num-images``) unless ``--data-root`` points at a dataset of the
config's layout. ``--model-config`` takes the model from another config,
e.g. ``configs/cam/cam_vgg16_voc.py``: VGG16-LargeFOV with the three
512-channel convs of OAA and the VOC configs' export scales (0.5, 1, 1.5,
2) with flips, for the classes of ``--config``.

A breakdown of ``predict`` follows: the scale-1 forward that ``predict``
runs for the image scores (``head.scores``), against the multi-scale
forward (``multiscale_cams``), and the per-image post-processing (with
the recipe).

Examples::

    python tools/analysis_tools/benchmark_cam_export.py --threads 1
    python tools/analysis_tools/benchmark_cam_export.py \\
        --model-config configs/cam/cam_vgg16_voc.py --image-size 320 480 \\
        --num-images 4 --batch-size 1 --threads 1
    python tools/analysis_tools/benchmark_cam_export.py --quick
"""
import argparse
import os
import os.path as osp
import statistics
import tempfile
from typing import Dict, List

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from rca_mm.datasets.synthetic import generate_synthvoc
from rca_mm.registry import METRICS, MODELS
from rca_mm.utils.benchmark import (benchmark_parser, cost, cost_name,
                                    machine_line, measure,
                                    random_weights_config, start_benchmark)

DEFAULT_CONFIG = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'


def build_cfg(args: argparse.Namespace) -> Config:
    """The config's data, metric and pseudo-label recipe with the model of
    ``--model-config`` (random weights; the data's preprocessor and
    classes), at the benchmark's sizes."""
    cfg = random_weights_config(args.config)
    if args.model_config:
        model = random_weights_config(args.model_config).model
        model.data_preprocessor = cfg.model.data_preprocessor
        model.head.num_classes = cfg.model.head.num_classes
        model.test_cfg.pseudo_label = cfg.model.test_cfg.get('pseudo_label')
        cfg.model = model
    loader = cfg.test_dataloader
    loader.num_workers = args.workers
    loader.persistent_workers = False
    if args.batch_size:
        loader.batch_size = args.batch_size
    loader.dataset.indices = args.num_images
    return cfg


def export_pass(model, loader, metric_cfg: dict, meta: dict,
                device: torch.device) -> Dict[str, float]:
    """One pass over the loader writing into a fresh folder: wall and
    process CPU seconds per part (``<part>``, ``<part>_cpu``) and the image
    count."""
    times = dict(images=0)
    for part in ('data', 'model', 'metric'):
        times[part] = times[part + '_cpu'] = 0.

    def add(part: str, wall: float, cpu: float) -> None:
        times[part] += wall
        times[part + '_cpu'] += cpu

    with tempfile.TemporaryDirectory() as out:
        metric = METRICS.build(dict(metric_cfg, output_dir=out))
        metric.dataset_meta = meta
        writer = METRICS.build(dict(type='PseudoLabelWriter', output_dir=out))

        iterator = iter(loader)
        while True:
            wall, cpu, batch = measure(lambda: next(iterator, None), device)
            if batch is None:
                break
            add('data', wall, cpu)
            with torch.no_grad():
                wall, cpu, outputs = measure(lambda: model.test_step(batch),
                                             device)
            add('model', wall, cpu)

            def process():
                samples = [o.to_dict() for o in outputs]
                metric.process(batch, samples)
                writer.process(batch, samples)

            wall, cpu, _ = measure(process, device)
            add('metric', wall, cpu)
            times['images'] += len(outputs)
        if len(os.listdir(osp.join(out, 'pseudo_labels'))) != \
                times['images']:
            raise RuntimeError('the writer did not write one pseudo label '
                               'per image')
    return times


@torch.no_grad()
def predict_breakdown(model, loader, device: torch.device,
                      repeat: int) -> Dict[str, float]:
    """Median seconds (process CPU time on a CPU, else wall) of predict's
    parts on the first batch."""
    batch = next(iter(loader))
    data = model.data_preprocessor(batch, False)
    inputs, samples = data['inputs'], data['data_samples']
    parts = dict(
        scores=lambda: model.head.scores(model.extract_feat(inputs)),
        multiscale=lambda: model.multiscale_cams(inputs),
        predict=lambda: model.predict(inputs, samples))
    times = {name: [] for name in parts}
    for _ in range(repeat):
        for name, fn in parts.items():
            times[name].append(cost(*measure(fn, device)[:2], device))
    return {name: statistics.median(v) for name, v in times.items()}


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(
        'CAM export images/s, model vs I/O vs metric', config=DEFAULT_CONFIG)
    parser.add_argument(
        '--model-config',
        help="config whose backbone, head and test_cfg (scales, flip) "
        "replace --config's, e.g. configs/cam/cam_vgg16_voc.py (default: "
        "--config's model)")
    parser.add_argument(
        '--data-root',
        help='dataset root of the config\'s '
        'layout (default: a generated SynthVOC)')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        default=[128, 128],
        metavar=('H', 'W'),
        help='size of the generated SynthVOC images')
    parser.add_argument('--num-images', type=int, default=64)
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help="test batch size (default: the config's)")
    parser.add_argument(
        '--workers',
        type=int,
        default=0,
        help='dataloader workers; 0 times the loading '
        'itself, more hides it behind the model')
    parser.add_argument(
        '--repeat',
        type=int,
        default=3,
        help='passes over the images (medians reported)')
    args = parser.parse_args()
    if args.quick:
        args.num_images, args.repeat = 4, 1
        args.image_size = [64, 64]
        args.threads = args.threads or 1
    if min(args.num_images, args.repeat) < 1:
        parser.error('--num-images and --repeat must be >= 1')
    return args


def main() -> None:
    args = parse_args()
    device = start_benchmark(args)
    cfg = build_cfg(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = osp.join(tmp, 'synthvoc')
            generate_synthvoc(
                root,
                num_train=args.num_images,
                num_val=0,
                num_train_subset=args.num_images,
                size=args.image_size,
                num_classes=cfg.model.head.num_classes,
                show_progress=False)
        elif not osp.isdir(root):
            raise FileNotFoundError(f'--data-root {root!r} is not a '
                                    'directory')
        cfg.test_dataloader.dataset.data_root = root
        loader = Runner.build_dataloader(cfg.test_dataloader)
        model = MODELS.build(cfg.model).to(device).eval()
        metric_cfg = dict(cfg.test_evaluator)
        meta = loader.dataset.metainfo
        passes: List[Dict[str, float]] = [
            export_pass(model, loader, metric_cfg, meta, device)
            for _ in range(args.repeat)
        ]
        parts = predict_breakdown(model, loader, device, args.repeat)
    num = passes[0]['images']
    keys = ('data', 'model', 'metric')
    med = {k: statistics.median(p[k] for p in passes) for k in keys}
    cpu = {k: statistics.median(p[k + '_cpu'] for p in passes) for k in keys}
    total, total_cpu = sum(med.values()), sum(cpu.values())
    head = cfg.model.head
    print(f'cam export: model of '
          f'{osp.basename(args.model_config or args.config)} '
          f'({cfg.model.backbone.type}, {head.type}), scales '
          f'{tuple(model.scales)}, flip {model.flip}, '
          f'{num} images of {args.image_size[0]}x{args.image_size[1]}'
          f'{" (generated SynthVOC)" if args.data_root is None else ""}, '
          f'batch {loader.batch_size}, {args.workers} loader workers, '
          f'median of {args.repeat} passes')
    print(f'  throughput {num / total:.2f} images/s wall '
          f'({1000 * total / num:.0f} ms/image; CPU time '
          f'{1000 * total_cpu / num:.0f} ms/image -> '
          f'{num / total_cpu:.2f} images/s on an idle core)')
    for name, value in med.items():
        print(f'  {name:7s} {1000 * value / num:8.1f} ms/image wall '
              f'{100 * value / total:5.1f}%   CPU '
              f'{1000 * cpu[name] / num:8.1f} ms/image '
              f'{100 * cpu[name] / total_cpu:5.1f}%')
    predict, scores = 1000 * parts['predict'], 1000 * parts['scores']
    multiscale = 1000 * parts['multiscale']
    print(f'  predict of one batch ({cost_name(device)}): {predict:.0f} ms '
          f'= scale-1 score pass {scores:.0f} ms '
          f'({100 * scores / predict:.1f}%) + multi-scale {multiscale:.0f} '
          f'ms + per-image post {predict - scores - multiscale:.0f} ms')
    print(machine_line(device))


if __name__ == '__main__':
    main()
