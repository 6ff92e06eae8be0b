"""Benchmark OAA accumulation: the store written in every step vs held in
memory and written once per epoch.

Runs :class:`OAAAccumulationHook` on synthetic training steps of a VOC-like
epoch (``--images`` images of ``--tags`` tags on average among
``--classes``, batches of ``--batch``, raw class maps of ``--cam-size``,
half of them flipped) and times, per variant, the hook's ``after_train_iter``
(each step) and its ``after_train_epoch`` (the epoch's write):

- ``every step``: ``max_memory_mb=0, flush_threads=1``, every step writes
  its images one after the other (one read, maximum and atomic write with
  file lock and fsync per image), as the hook did before it held the maps
  in memory;
- ``in memory, T thr``: the default; the steps only merge into memory, the
  epoch end writes each image once, with 1 and with ``--flush-threads``
  threads.

Every variant does the same file work per epoch (each image is seen, so
read, merged and written, once per epoch); what differs is where it is
paid. Epochs of the variants alternate, each variant in its own store; the
first epoch of each creates its files (warm-up, not reported), the later
ones merge into them, as every accumulating epoch after the first does. The
step times are wall-clock (the cost is waiting for the disk); the process CPU
time is printed beside them. ``--store-dir`` puts the stores on the file
system to measure (default: a temporary directory).

Examples::

    python tools/analysis_tools/benchmark_oaa.py --threads 1
    python tools/analysis_tools/benchmark_oaa.py --images 2000 \\
        --store-dir /mnt/shared/tmp
    python tools/analysis_tools/benchmark_oaa.py --quick
"""
import os
import shutil
import statistics
import tempfile
import time
from types import SimpleNamespace
from typing import Dict, List

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmseg.structures import SegDataSample

from rca_mm.engine.hooks import OAAAccumulationHook
from rca_mm.utils.benchmark import benchmark_parser, start_benchmark


def parse_args():
    parser = benchmark_parser(
        'OAA accumulation: store written in every step vs once per epoch',
        device=False)
    parser.add_argument('--images', type=int, default=1024)
    parser.add_argument('--classes', type=int, default=20)
    parser.add_argument(
        '--tags',
        type=float,
        default=1.5,
        help='mean tags per image (VOC train_aug: 1.5; COCO: 2.9)')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument(
        '--cam-size',
        type=int,
        default=32,
        help='side of the raw class maps (OAA configs: 256 / 8 = 32)')
    parser.add_argument(
        '--epochs',
        type=int,
        default=3,
        help='timed epochs per variant (after one warm-up)')
    parser.add_argument('--flush-threads', type=int, default=8)
    parser.add_argument(
        '--store-dir',
        default=None,
        help='where the stores go (default: a temp dir)')
    return parser.parse_args()


class Model(nn.Module):
    """Stands for the classifier, whose training maps the loop publishes."""


def make_batches(args, gen: torch.Generator) -> List[dict]:
    """One epoch of batches: the ``'train_cams'`` that a classifier
    publishes in each step."""
    batches = []
    extra = args.tags - 1
    for start in range(0, args.images, args.batch):
        ids = range(start, min(start + args.batch, args.images))
        samples = []
        for i in ids:
            k = 1 + int(torch.rand(1, generator=gen) < extra % 1) + int(extra)
            labels = torch.zeros(args.classes)
            labels[torch.randperm(args.classes, generator=gen)[:k]] = 1.
            flip = bool(torch.rand(1, generator=gen) < .5)
            sample = SegDataSample(
                metainfo=dict(
                    img_name=f'img{i:06d}',
                    ori_shape=(375, 500),
                    img_shape=(256, 256),
                    flip=flip,
                    flip_direction='horizontal' if flip else None))
            sample.gt_img_labels = labels
            samples.append(sample)
        n = len(samples)
        batches.append(
            dict(
                cams=torch.randn(
                    n,
                    args.classes,
                    args.cam_size,
                    args.cam_size,
                    generator=gen),
                # The tags score highest, so that every tag passes OAA's gate.
                scores=torch.stack([s.gt_img_labels for s in samples]) * 5 +
                torch.rand(n, args.classes, generator=gen),
                data_samples=samples))
    return batches


def run_epoch(hook: OAAAccumulationHook, batches: List[dict], store_dir: str,
              epoch: int) -> Dict[str, object]:
    """One epoch (the store emptied before epoch 0): step and epoch-end
    times."""
    runner = SimpleNamespace(
        model=Model(),
        message_hub=MessageHub(name='benchmark_oaa'),
        work_dir=store_dir,
        epoch=0,
        max_epochs=2,
        iter=epoch * len(batches),
        max_iters=(epoch + 1) * len(batches))
    hook.store_dir = store_dir
    hook.before_train(runner)
    walls, cpus = [], []
    for batch in batches:
        hook.before_train_iter(runner, batch_idx=runner.iter)
        runner.message_hub.update_info('train_cams', batch, resumed=False)
        wall, cpu = time.perf_counter(), time.process_time()
        hook.after_train_iter(runner, batch_idx=runner.iter)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        runner.iter += 1
    held = hook.memory.nbytes
    maps = sum(len(hook.memory.class_ids(n)) for n in hook.memory.names())
    wall = time.perf_counter()
    hook.after_train_epoch(runner)
    return dict(
        step_wall=statistics.median(walls),
        step_cpu=statistics.median(cpus),
        epoch_steps=sum(walls),
        epoch_end=time.perf_counter() - wall,
        held=held,
        maps=maps)


def main():
    args = parse_args()
    if args.quick:
        args.images, args.epochs, args.classes = 32, 1, 4
    start_benchmark(args, extra=f'flush threads {args.flush_threads}')
    gen = torch.Generator().manual_seed(args.seed)
    batches = make_batches(args, gen)
    root = tempfile.mkdtemp(prefix='oaa_bench_', dir=args.store_dir)
    variants = {
        'every step':
        dict(max_memory_mb=0, flush_threads=1),
        'in memory, 1 thr':
        dict(flush_threads=1),
        f'in memory, {args.flush_threads} thr':
        dict(flush_threads=args.flush_threads),
    }
    hooks = {name: OAAAccumulationHook(**kw) for name, kw in variants.items()}
    results = {name: [] for name in variants}
    try:
        for epoch in range(args.epochs + 1):
            order = list(variants) if epoch % 2 == 0 else list(
                reversed(variants))
            for name in order:
                out = run_epoch(
                    hooks[name], batches,
                    os.path.join(root, str(list(variants).index(name))), epoch)
                if epoch > 0 or args.epochs == 0 or args.quick:
                    results[name].append(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f'{args.images} images x {args.tags} tags of {args.classes} '
          f'classes, batch {args.batch}, maps {args.cam_size}x'
          f'{args.cam_size}, {len(batches)} steps; medians over '
          f'{len(results["every step"])} epochs; store under '
          f'{args.store_dir or tempfile.gettempdir()}')
    print(f'{"variant":<18} {"step ms (wall)":>15} {"step ms (CPU)":>14} '
          f'{"steps s":>8} {"epoch end s":>12} {"epoch s":>8}')
    summary = {}
    for name, runs in results.items():
        med = {
            k: statistics.median(r[k] for r in runs)
            for k in ('step_wall', 'step_cpu', 'epoch_steps', 'epoch_end')
        }
        med['epoch'] = med['epoch_steps'] + med['epoch_end']
        summary[name] = med
        print(f'{name:<18} {1e3 * med["step_wall"]:>15.3f} '
              f'{1e3 * med["step_cpu"]:>14.3f} {med["epoch_steps"]:>8.2f} '
              f'{med["epoch_end"]:>12.2f} {med["epoch"]:>8.2f}')
    old = summary['every step']
    for name in list(variants)[1:]:
        new = summary[name]
        print(f'every step / {name}: step '
              f'{old["step_wall"] / max(new["step_wall"], 1e-9):.1f}x '
              f'({1e3 * old["step_wall"]:.2f} vs '
              f'{1e3 * new["step_wall"]:.3f} ms wall), whole epoch (steps + '
              f'epoch end) {old["epoch"] / max(new["epoch"], 1e-9):.2f}x')
    held = results[list(variants)[-1]][-1]
    per_map = held['held'] / max(held['maps'], 1)
    print(f'memory held at the epoch end: {held["held"] / 2**20:.2f} MiB '
          f'for {held["maps"]} (image, class) maps, {per_map / 1024:.2f} '
          f'KiB each')


if __name__ == '__main__':
    main()
