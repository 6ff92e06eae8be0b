"""Images per second of CAMInferencer on a config, at a given image size.

    python demo/inference_speed.py CONFIG [--checkpoint CKPT] [--size 128]
        [--num-images 32] [--batch-size 8] [--device cpu] [--threads 1]

Random images (and, without a checkpoint, random weights: the speed does
not depend on them) go through the whole inference: the config's scales
and flip, RCA's P maps, the pseudo-label recipe and, unless --no-draw, the
panels. Nothing is written to disk. One warm-up batch is not timed.
"""
import os
import time
from argparse import ArgumentParser

import numpy as np
import torch
from mmengine.config import DictAction

from rca_mm.apis import CAMInferencer


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='stage-1 config file')
    parser.add_argument(
        '--checkpoint', help='checkpoint (default: random '
        'weights)')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=[128, 128],
        metavar=('H', 'W'),
        help='image size (default: SynthVOC\'s 128 128)')
    parser.add_argument('--num-images', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--threads', type=int, help="torch's CPU threads (default: torch's)")
    parser.add_argument(
        '--no-draw', action='store_true', help='leave out the panels')
    parser.add_argument(
        '--no-coarse',
        action='store_true',
        help="leave out RCA's P maps (one forward pass)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.batch_size < 1:
        parser.error('--num-images and --batch-size must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(args.cfg_options or {})
    options.setdefault('model.backbone.init_cfg', None)
    inferencer = CAMInferencer(
        args.config,
        args.checkpoint,
        device=args.device,
        cfg_options=options,
        coarse_cams=not args.no_coarse,
        show_progress=False)
    rng = np.random.default_rng(0)
    h, w = args.size
    images = [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for _ in range(args.num_images)
    ]
    draw = not args.no_draw
    inferencer(
        images[:args.batch_size], batch_size=args.batch_size,
        draw=draw)  # warm-up
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    inferencer(images, batch_size=args.batch_size, draw=draw)
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    # CPU seconds per image depend less on other processes than wall time.
    print(f'{args.num_images / seconds:.2f} images/s, '
          f'{cpu / args.num_images:.2f} CPU s/image ({args.num_images} images '
          f'of {h}x{w}, batch '
          f'{args.batch_size}, {torch.get_num_threads()} threads, device '
          f'{args.device}, draw={draw}, P maps={inferencer.with_coarse}, '
          f'load average {load:.1f})')


if __name__ == '__main__':
    main()
