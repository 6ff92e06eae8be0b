"""Benchmark dense CRF over a folder of images: 1 vs N worker processes.

Runs :func:`rca_mm.models.postprocess.dense_crf.dense_crf_batch` (images
passed as paths, read in the workers; label maps returned) over every image
of a folder, with one process and with ``--workers`` processes, the variants
interleaved and repeated; prints images/s (medians) and the speed-up.

The probabilities are synthetic: smooth random score maps (a softmax of
blurred noise) over ``--classes`` classes at each image's size, so the CRF
does the work it does on real CAMs or segmentation logits (its cost depends
on the pixels, the classes and the iterations, not on the values). Without
``--image-dir`` a folder of VOC-sized noise images is generated.

Examples::

    python tools/analysis_tools/benchmark_crf.py --workers 2
    python tools/analysis_tools/benchmark_crf.py --image-dir \\
        data/VOCdevkit/VOC2012/JPEGImages --num-images 32 --classes 21 \\
        --params deeplabv2
    python tools/analysis_tools/benchmark_crf.py --quick
"""
import argparse
import glob
import os
import os.path as osp
import resource
import statistics
import tempfile
import time
from typing import List

import cv2
import numpy as np

from rca_mm.models.postprocess.dense_crf import (DEEPLABV2_CRF_PARAMS,
                                                 dense_crf_batch,
                                                 import_densecrf)
from rca_mm.utils.benchmark import (benchmark_parser, machine_line,
                                    start_benchmark)

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def workers_line(workers: int) -> str:
    """The worker counts, for the machine line."""
    return (f'CRF workers 1 vs {workers} (processes, pydensecrf is '
            'single-threaded)')


def cpu_seconds() -> float:
    """CPU seconds of this process and of its terminated, joined children
    (the pool's workers once the pool has shut down)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def write_images(folder: str, num: int, height: int, width: int,
                 seed: int) -> List[str]:
    """Write ``num`` smooth colour-noise JPEGs; return their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(num):
        noise = rng.integers(
            0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = cv2.resize(
            noise, (width, height), interpolation=cv2.INTER_CUBIC)
        path = osp.join(folder, f'{i:05d}.jpg')
        cv2.imwrite(path, image)
        paths.append(path)
    return paths


def list_images(folder: str, num: int) -> List[str]:
    """The first ``num`` images of ``folder`` (sorted)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--image-dir {folder!r} is not a directory')
    paths = sorted(
        p for p in glob.glob(osp.join(folder, '*'))
        if p.lower().endswith(IMAGE_EXTS))[:num]
    if not paths:
        raise FileNotFoundError(
            f'--image-dir {folder!r} holds no image ({", ".join(IMAGE_EXTS)})')
    return paths


def smooth_probs(shape: tuple, classes: int,
                 rng: np.random.Generator) -> np.ndarray:
    """A (C, H, W) float32 softmax of blurred noise."""
    height, width = shape
    logits = rng.normal(size=(height // 32 + 2, width // 32 + 2, classes))
    logits = cv2.resize(
        logits.astype(np.float32), (width, height),
        interpolation=cv2.INTER_CUBIC).reshape(height, width, classes)
    logits = 4 * logits.transpose(2, 0, 1)
    probs = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (probs / probs.sum(axis=0, keepdims=True)).astype(np.float32)


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(
        'Dense CRF images/s with 1 vs N processes', device=False)
    parser.add_argument(
        '--image-dir',
        help='folder of images (default: '
        'generate noise images of --size)')
    parser.add_argument('--num-images', type=int, default=16)
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=[375, 500],
        metavar=('H', 'W'),
        help='generated image size (VOC: about 375x500)')
    parser.add_argument(
        '--classes',
        type=int,
        default=3,
        help='CRF labels: pseudo labels use background + '
        'the tags (about 2-3), DeepLabV2 stage 2 uses 21')
    parser.add_argument(
        '--params',
        choices=['psa', 'deeplabv2'],
        default='psa',
        help="CRF parameters: 'psa' (dense_crf's defaults, "
        "pseudo labels) or 'deeplabv2' (stage-2 test)")
    parser.add_argument(
        '--workers',
        type=int,
        default=os.cpu_count() or 2,
        help='processes of the parallel variant')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.num_images, args.size, args.repeat = 4, [64, 80], 1
        args.workers = 2
    if min(args.num_images, args.repeat, args.classes) < 1 or \
            args.workers < 2:
        parser.error('--num-images, --repeat and --classes must be >= 1 '
                     'and --workers >= 2')
    return args


def main() -> None:
    args = parse_args()
    import_densecrf()  # fails early with the install hint
    start_benchmark(args, workers_line(args.workers))
    params = DEEPLABV2_CRF_PARAMS if args.params == 'deeplabv2' else {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.image_dir:
            paths = list_images(args.image_dir, args.num_images)
        else:
            paths = write_images(tmp, args.num_images, *args.size, args.seed)
        rng = np.random.default_rng(args.seed)
        probs = [
            smooth_probs(cv2.imread(p).shape[:2], args.classes, rng)
            for p in paths
        ]
        pixels = sum(p.shape[1] * p.shape[2] for p in probs) / len(probs)
        times = {1: [], args.workers: []}
        cpu = {1: [], args.workers: []}
        for i in range(args.repeat):
            order = [1, args.workers] if i % 2 == 0 else [args.workers, 1]
            for workers in order:
                start, start_cpu = time.perf_counter(), cpu_seconds()
                labels = dense_crf_batch(
                    paths,
                    probs,
                    workers=workers,
                    return_labels=True,
                    **params)
                times[workers].append(time.perf_counter() - start)
                cpu[workers].append(cpu_seconds() - start_cpu)
                assert len(labels) == len(paths)
    rate = {w: len(paths) / statistics.median(t) for w, t in times.items()}
    cpu = {w: statistics.median(t) for w, t in cpu.items()}
    print(f'crf: {len(paths)} images of {pixels / 1e3:.0f} kpixels on '
          f'average, {args.classes} classes, {args.params} parameters, '
          f'median of {args.repeat}')
    for workers, value in rate.items():
        # CPU seconds of this process and its (joined) workers over the wall
        # seconds: the cores the run actually got.
        cores = cpu[workers] * value / len(paths)
        print(f'  workers {workers}: {value:.2f} images/s '
              f'({1000 / value:.0f} ms/image wall, '
              f'{1000 * cpu[workers] / len(paths):.0f} ms/image CPU, '
              f'{cores:.2f} cores obtained)')
    print(f'  ratio {args.workers} workers / 1 = '
          f'{rate[args.workers] / rate[1]:.2f}x')
    print(machine_line(extra=workers_line(args.workers)))


if __name__ == '__main__':
    main()
