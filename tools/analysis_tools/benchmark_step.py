"""Benchmark the training-step overhead of RCA over the plain CAM classifier.

One training step (forward, backward, SGD step; for RCA also the bank update
of Eq. 3 inside the head) of ``CAMClassifier`` with ``CAMHead`` and with
``RCAHead`` on the same backbone, batch and input size, the two variants
interleaved in one run (the order alternates each round), after warm-up
steps; medians of the timed steps. The RCA head holds a bank of the stated
size: allocated from synthetic tags and filled with random entries written by
``update`` (gate True), prototypes from one k-means.

Banks (``--bank``): ``voc`` is one entry per (image, tag) of 10,582 images
with about 1.5 tags each (20 classes); ``coco`` is 80 classes x 500 entries
(``capacity_per_class=500``). The model is that of a CAM config
(``--config``): its backbone and head, the head made an ``RCAHead`` for the
RCA variant, with the bank's number of classes. E.g.
``configs/cam/cam_vgg16_voc.py`` (VGG16-LargeFOV with three new 512-channel
convs, D = 512), ``configs/cam/cam_r38_voc.py`` (WideResNet-38, D = 4096);
``--quick`` uses ``configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py``
(ResNet-18 of width 16, D = 128).

``--sweep`` instead times the bank-dependent part alone (RSC loss forward and
backward, Eq. 4-6, plus the bank update, Eq. 3) for a batch of regions
against bank sizes and feature dimensions, and can plot it (``--plot``).

Examples::

    # D = 512 at the paper's batch, a smaller input (CPU)
    python tools/analysis_tools/benchmark_step.py \\
        --config configs/cam/cam_vgg16_voc.py \\
        --input-size 161 --batch 8 --bank voc coco
    # D = 4096, float16 bank storage also timed, loss effect printed
    python tools/analysis_tools/benchmark_step.py \\
        --config configs/cam/cam_r38_voc.py \\
        --input-size 97 --batch 8 --bank voc coco --fp16
    python tools/analysis_tools/benchmark_step.py --sweep \\
        --plot docs/images/perf_rca_sweep.png
    python tools/analysis_tools/benchmark_step.py --quick
"""
import argparse
import copy
import os
import statistics
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmseg.structures import SegDataSample

from rca_mm.models.losses.region_contrast_loss import RegionContrastLoss
from rca_mm.models.memory import batched_kmeans
from rca_mm.models.memory.region_memory_bank import RegionMemoryBank
from rca_mm.registry import MODELS
from rca_mm.utils.benchmark import (benchmark_parser, cost, cost_name,
                                    machine_line, measure,
                                    random_weights_config, start_benchmark,
                                    synthetic_tags)

DEFAULT_CONFIG = 'configs/cam/cam_vgg16_voc.py'
QUICK_CONFIG = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'
# name: (classes, images, mean tags per image, per-class cap)
BANKS: Dict[str, Tuple[int, int, float, Optional[int]]] = dict(
    voc=(20, 10582, 1.5, None),
    coco=(80, 82081, 2.9, 500),
    tiny=(20, 200, 1.5, None),
)


def fill_bank(bank: RegionMemoryBank,
              tags: torch.Tensor,
              generator: torch.Generator,
              chunk: int = 2048) -> None:
    """Allocate from ``tags`` and write a random entry into every slot."""
    bank.allocate(tags)
    caps = bank.capacities.cpu()
    pairs = []
    for cls in range(tags.shape[1]):
        images = tags[:, cls].nonzero()[:, 0][:int(caps[cls])]
        pairs.append(torch.stack([torch.full_like(images, cls), images], 1))
    pairs = torch.cat(pairs)
    device = bank.feats.device
    for start in range(0, pairs.shape[0], chunk):
        part = pairs[start:start + chunk]
        # Non-negative, like ReLU'd features.
        feats = torch.rand(
            part.shape[0], bank.feat_dim, generator=generator).to(device)
        bank.update(feats, part[:, 0].to(device), part[:, 1].to(device),
                    torch.ones(part.shape[0], dtype=torch.bool, device=device))


def build_pair(
        model: dict, bank_name: str, device: torch.device,
        seed: int) -> Tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """The CAM classifier ``model`` and its RCA variant sharing one
    backbone, RCA's bank filled and its prototypes set, and the synthetic
    tags of the bank's images."""
    num_classes, num_images, per_image, cap = BANKS[bank_name]
    head = dict(model['head'], num_classes=num_classes)
    cam = MODELS.build(dict(model, head=dict(head, type='CAMHead')))
    rca = MODELS.build(
        dict(
            model,
            head=dict(
                head,
                type='RCAHead',
                memory_bank=dict(
                    type='RegionMemoryBank', capacity_per_class=cap))))
    rca.backbone = cam.backbone  # the same backbone object
    rca.head.load_state_dict(cam.head.state_dict(), strict=False)
    cam.to(device).train()
    rca.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    tags = synthetic_tags(num_classes, num_images, per_image, gen)
    fill_bank(rca.head.memory_bank, tags, gen)
    entries, mask = rca.head.memory_bank.per_class_entries()
    centers, valid, _ = batched_kmeans(
        entries.float(), mask, 10, num_iters=20, n_init=1, seed=seed)
    rca.head.aggregation.set_prototypes(centers, valid)
    return cam, rca, tags


def make_batch(tags: torch.Tensor, batch: int, size: int,
               device: torch.device) -> Tuple[torch.Tensor, list]:
    """Random normalised inputs and samples of the first ``batch`` images."""
    inputs = torch.randn(batch, 3, size, size, device=device)
    samples = []
    for i in range(batch):
        sample = SegDataSample(metainfo=dict(sample_idx=i))
        sample.gt_img_labels = tags[i].float().to(device)
        samples.append(sample)
    return inputs, samples


def step_fn(model: torch.nn.Module, inputs: torch.Tensor, samples: list,
            device: torch.device) -> Callable[[], Tuple[float, float]]:
    """A closure running one SGD training step; returns its wall-clock and
    process CPU seconds."""
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=1e-5,
                            momentum=0.9)

    def step() -> None:
        losses = model.loss(inputs, samples)
        loss = sum(v for v in losses.values())
        optim.zero_grad()
        loss.backward()
        optim.step()

    def run() -> Tuple[float, float]:
        wall, cpu, _ = measure(step, device)
        return wall, cpu

    return run


def interleaved(fns: Dict[str, Callable[[], Tuple[float, float]]], warmup: int,
                repeat: int) -> Dict[str, List[Tuple[float, float]]]:
    """Run every closure ``warmup + repeat`` times, alternating the order;
    the timed ``(wall, cpu)`` seconds of each."""
    times = {name: [] for name in fns}
    names = list(fns)
    for i in range(warmup + repeat):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            t = fns[name]()
            if i >= warmup:
                times[name].append(t)
    return times


def half_bank_copy(rca: torch.nn.Module) -> torch.nn.Module:
    """A copy of the RCA classifier (same backbone object) whose bank stores
    its entries in float16."""
    backbone = rca.backbone
    rca.backbone = None  # not copied: shared
    copied = copy.deepcopy(rca)
    rca.backbone = copied.backbone = backbone
    bank = copied.head.memory_bank
    bank.feats = bank.feats.half()
    bank.storage_dtype = torch.float16
    return copied


def fp16_loss_effect(rca: torch.nn.Module,
                     device: torch.device,
                     seed: int,
                     updates: int = 100) -> Tuple[float, float]:
    """Relative change of the RSC loss value with float16 entry storage.

    First for a float16 copy of the current entries, then after both banks
    received the same ``updates`` momentum updates (Eq. 3) of 12 resident
    entries each, with observations within 10% of the entries (in float16
    an update smaller than the storage resolution is rounded away). The
    loss is taken for the same random regions and mixup draws.

    Returns:
        tuple[float, float]: the relative change as stored, and after the
        updates.
    """
    bank32 = rca.head.memory_bank
    bank16 = copy.deepcopy(bank32)
    bank16.feats = bank16.feats.half()
    bank16.storage_dtype = torch.float16
    gen = torch.Generator().manual_seed(seed)
    _, classes = bank32.written_entries()
    regions = torch.rand(12, bank32.feat_dim, generator=gen).to(device)
    region_classes = classes[torch.randperm(classes.numel(),
                                            generator=gen)[:12].to(device)]
    image_ids = torch.arange(12, device=device) // 2

    def relative_change() -> float:
        values = []
        for bank in (bank32, bank16):
            feats, cls = bank.written_entries()
            torch.manual_seed(seed)
            values.append(
                float(
                    rca.head.contrast_loss(regions, region_classes, image_ids,
                                           feats, cls)))
        return abs(values[1] - values[0]) / abs(values[0])

    stored = relative_change()
    written = bank32.written.nonzero()[:, 0].cpu()
    for _ in range(updates):
        slots = written[torch.randperm(written.numel(), generator=gen)[:12]]
        slots = slots.to(device)
        noise = 1 + 0.1 * (2 * torch.rand(12, 1, generator=gen) - 1)
        obs = bank32.feats[slots] * noise.to(device)
        for bank in (bank32, bank16):
            bank.update(obs, bank.slot_class[slots], bank.slot_image[slots])
    return stored, relative_change()


def run_steps(args: argparse.Namespace, device: torch.device) -> None:
    model = random_weights_config(args.config).model
    for bank_name in args.bank:
        cam, rca, tags = build_pair(model, bank_name, device, args.seed)
        inputs, samples = make_batch(tags, args.batch, args.input_size, device)
        fns = dict(
            cam=step_fn(cam, inputs, samples, device),
            rca=step_fn(rca, inputs, samples, device))
        if args.fp16:
            fns['rca_fp16'] = step_fn(
                half_bank_copy(rca), inputs, samples, device)
        bank = rca.head.memory_bank
        times = interleaved(fns, args.warmup, args.repeat)
        wall = {
            k: statistics.median(t[0] for t in v)
            for k, v in times.items()
        }
        med = {
            k: statistics.median(cost(*t, device) for t in v)
            for k, v in times.items()
        }
        print(f'step: {os.path.basename(args.config)} '
              f'({model.backbone.type}, D={bank.feat_dim}), bank '
              f'{bank_name} ({bank.num_written()} entries, '
              f'{bank.nbytes / 2**20:.1f} MiB float32, entries alone '
              f'{bank.feats.numel() * 2 / 2**20:.1f} MiB as float16), batch '
              f'{args.batch}, input {args.input_size}x{args.input_size}, '
              f'{args.repeat} timed steps after {args.warmup} warm-up')
        kind = cost_name(device)
        for name, value in med.items():
            values = [cost(*t, device) for t in times[name]]
            print(f'  {name:9s} median {value:.3f} s/step {kind} (range '
                  f'{min(values):.3f}-{max(values):.3f}; wall median '
                  f'{wall[name]:.3f})')
        for name in [n for n in med if n != 'cam']:
            extra = med[name] - med['cam']
            print(f'  ratio {name}/cam = {med[name] / med["cam"]:.3f} '
                  f'({100 * extra / med["cam"]:+.1f}%, {1000 * extra:+.0f} '
                  f'ms/step {kind}; wall ratio '
                  f'{wall[name] / wall["cam"]:.3f})')
        if args.profile:
            profile_steps(fns, args.profile)
        if args.fp16:
            stored, updated = fp16_loss_effect(rca, device, args.seed)
            print(f'  float16 bank: relative change of the RSC loss '
                  f'{stored:.2e} as stored, {updated:.2e} after 100 '
                  'momentum updates of 12 entries')
        print(machine_line(device))
        del cam, rca, fns


def profile_steps(fns: Dict[str, Callable[[], Tuple[float, float]]],
                  top: int) -> None:
    """One more step of each variant under ``torch.profiler``; prints its
    ``top`` operators by self CPU time (where RCA's extra time goes)."""
    from torch.profiler import ProfilerActivity, profile
    for name, fn in fns.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(f'  profile of one {name} step, operators by self CPU time:')
        print(prof.key_averages().table(
            sort_by='self_cpu_time_total', row_limit=top))


def bank_op_time(num_entries: int, dim: int, regions: int,
                 device: torch.device, repeat: int) -> float:
    """Median seconds (process CPU time on a CPU, else wall) of the RSC loss
    forward+backward plus a bank update for ``regions`` regions against
    ``num_entries`` written entries (20 classes)."""
    gen = torch.Generator().manual_seed(0)
    num_images = max(num_entries, regions)
    tags = torch.zeros(num_images, 20, dtype=torch.bool)
    tags[torch.arange(num_images), torch.arange(num_images) % 20] = True
    bank = RegionMemoryBank(num_classes=20, feat_dim=dim).to(device)
    fill_bank(bank, tags[:num_entries] if num_entries >= regions else tags,
              gen)
    loss = RegionContrastLoss(loss_weight=0.01)
    feats = torch.rand(regions, dim, generator=gen).to(device)
    classes = (torch.arange(regions) % 20).to(device)
    image_ids = torch.arange(regions, device=device) // 2

    def step() -> None:
        f = feats.clone().requires_grad_()
        bank_feats, bank_classes = bank.entries()  # as RCAHead.loss
        loss(f, classes, image_ids, bank_feats, bank_classes).backward()
        bank.update(f.detach(), classes, image_ids, defer=True)

    step()  # warm-up
    return statistics.median(
        cost(*measure(step, device)[:2], device) for _ in range(repeat))


def run_sweep(args: argparse.Namespace, device: torch.device) -> None:
    sizes = args.sweep_sizes
    dims = args.sweep_dims
    print(f'sweep: RSC loss fwd+bwd + bank update, {args.regions} regions '
          f'per step, median of {args.repeat}; ms {cost_name(device)} time')
    print('  entries ' + ''.join(f'{f"D={d}":>10s}' for d in dims))
    table = {}
    for size in sizes:
        row = [
            bank_op_time(size, d, args.regions, device, args.repeat)
            for d in dims
        ]
        table[size] = row
        print(f'  {size:7d} ' + ''.join(f'{1000 * t:10.1f}' for t in row))
    print(machine_line(device))
    if args.plot:
        plot_sweep(table, dims, args.plot)


def plot_sweep(table: Dict[int, List[float]], dims: List[int],
               path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=100)
    sizes = sorted(table)
    for j, d in enumerate(dims):
        ax.plot(
            sizes, [1000 * table[s][j] for s in sizes], 'o-', label=f'D={d}')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('written bank entries')
    ax.set_ylabel('ms per step')
    ax.set_title('RSC loss (fwd+bwd) + bank update', fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    print(f'plot written to {path}')


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser('Training-step overhead of the RCA head')
    parser.add_argument(
        '--config',
        help=f'CAM config whose model is timed, and made RCA (default: '
        f'{DEFAULT_CONFIG}; with --quick {QUICK_CONFIG})')
    parser.add_argument(
        '--bank', nargs='+', choices=sorted(BANKS), default=['voc', 'coco'])
    parser.add_argument('--batch', type=int, default=8, help='paper: 8')
    parser.add_argument(
        '--input-size',
        type=int,
        default=321,
        help='square input side (paper: 321)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--repeat',
        type=int,
        default=5,
        help='timed steps per variant (median reported)')
    parser.add_argument(
        '--fp16',
        action='store_true',
        help='also time a float16 bank, and print the '
        'effect on the RSC loss value')
    parser.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='N',
        help='after the timing, profile one more step of each variant and '
        'print its N most expensive operators')
    parser.add_argument(
        '--sweep',
        action='store_true',
        help='time the RSC loss + bank update alone against '
        'bank sizes and D')
    parser.add_argument(
        '--sweep-sizes', type=int, nargs='+', default=[1000, 10000, 40000])
    parser.add_argument(
        '--sweep-dims', type=int, nargs='+', default=[128, 512, 4096])
    parser.add_argument(
        '--regions',
        type=int,
        default=12,
        help='regions per step in the sweep (8 images x 1.5)')
    parser.add_argument('--plot', help='PNG of the sweep')
    args = parser.parse_args()
    args.config = args.config or (QUICK_CONFIG
                                  if args.quick else DEFAULT_CONFIG)
    if args.quick:
        args.bank, args.batch = ['tiny'], 2
        args.input_size, args.warmup, args.repeat = 64, 1, 2
        args.sweep_sizes, args.sweep_dims = [200, 1000], [64, 128]
        args.threads = args.threads or 1
    if min(args.batch, args.input_size, args.repeat) < 1 or args.warmup < 0:
        parser.error('--batch, --input-size and --repeat must be >= 1, '
                     '--warmup >= 0')
    return args


def main() -> None:
    args = parse_args()
    device = start_benchmark(args)
    if args.sweep:
        run_sweep(args, device)
    else:
        run_steps(args, device)


if __name__ == '__main__':
    main()
