"""Benchmark what RCA costs, in three subcommands.

``step``: the training-step overhead of RCA over the plain CAM classifier.
One training step (forward, backward, SGD step; for RCA also the bank update
of Eq. 3 inside the head) of ``CAMClassifier`` with ``CAMHead`` and with
``RCAHead`` on the same backbone, batch and input size, the variants
interleaved in one run (the order alternates each round), after warm-up
steps; medians of the timed steps. The RCA head holds a bank of the stated
size (``--bank``, ``rca_mm.utils.benchmark.BANKS``): allocated from
synthetic tags and filled with random entries written by ``update`` (gate
True), prototypes from one k-means. ``voc`` is one entry per (image, tag)
of 10,582 images with about 1.5 tags each (20 classes); ``coco`` is 80
classes x 500 entries (``capacity_per_class=500``). The model is that of a
CAM config (``--config``): its backbone and head, the head made an
``RCAHead`` for the RCA variant, with the bank's number of classes. E.g.
``configs/cam/cam_vgg16_voc.py`` (VGG16-LargeFOV with three new 512-channel
convs, D = 512), ``configs/cam/cam_r38_voc.py`` (WideResNet-38, D = 4096);
``--quick`` uses ``configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py``
(ResNet-18 of width 16, D = 128). ``--fp16`` also times a float16 bank and
prints its effect on the RSC loss; ``--profile N`` prints the N costliest
operators of one more step of each variant.

``sweep``: the bank-dependent part alone (RSC loss forward and backward,
Eq. 4-6, plus the bank update, Eq. 3) for a batch of regions against bank
sizes and feature dimensions, and its plot (``--plot``).

``ops``: RCA's memory operations against straightforward references:

(a) k-means of a COCO-sized bank (80 classes x 500 entries, K=10, D=512 and
    4096): ``batched_kmeans`` against scikit-learn ``KMeans`` fitted class
    by class, time and inertia ratio (target: >= 10x faster, inertia
    within 1%);
(b) the RSC loss with mixup (Eq. 4-6), forward and backward, for a batch of
    8 images with 2 tags each, against VOC-sized (one entry per region of
    10,582 images) and COCO-sized (80 x 500) banks: ``RegionContrastLoss``
    against a per-region, per-positive Python loop written here from the
    equations, time and value agreement (target: >= 20x faster, within
    1e-5);
(c) the bank update (Eq. 3) for a batch of 16 regions, the bank's bytes for
    VOC/COCO sizes, D=512/4096, float32 and float16 storage, and the effect
    of float16 storage on the loss value.

``step`` and ``sweep`` report the median process CPU time on a CPU (the
wall time includes waiting for cores shared with other jobs) and the wall
time on a GPU; ``ops`` the best wall time of ``--repeat`` runs. On a
machine shared with other jobs, ``--threads 1`` (torch and scikit-learn
alike) gives stable timings: multi-threaded small ops then wait for busy
cores.

Examples::

    # D = 512 at the paper's batch, a smaller input (CPU)
    python tools/analysis_tools/benchmark_rca.py step \\
        --config configs/cam/cam_vgg16_voc.py \\
        --input-size 161 --batch 8 --bank voc coco
    # D = 4096, float16 bank storage also timed, loss effect printed
    python tools/analysis_tools/benchmark_rca.py step \\
        --config configs/cam/cam_r38_voc.py \\
        --input-size 97 --batch 8 --bank voc coco --fp16
    python tools/analysis_tools/benchmark_rca.py sweep \\
        --plot docs/images/perf_rca_sweep.png
    python tools/analysis_tools/benchmark_rca.py ops --threads 1
    python tools/analysis_tools/benchmark_rca.py step --quick  # seconds
"""
import argparse
import copy
import os
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import torch
from mmseg.structures import SegDataSample

from rca_mm.models.losses.region_contrast_loss import RegionContrastLoss
from rca_mm.models.memory import batched_kmeans
from rca_mm.models.memory.region_memory_bank import RegionMemoryBank
from rca_mm.registry import MODELS
from rca_mm.utils.benchmark import (BANKS, add_benchmark_options, cost,
                                    cost_name, fill_bank, interleaved,
                                    machine_line, measure,
                                    random_weights_config, start_benchmark,
                                    step_fn, synthetic_tags)

DEFAULT_CONFIG = 'configs/cam/cam_vgg16_voc.py'
QUICK_CONFIG = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'


# ------------------------------------------------------------------- step
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
    bank16 = half_bank_copy(rca).head.memory_bank
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


# ------------------------------------------------------------------ sweep
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
    sizes = args.sizes
    dims = args.dims
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


# -------------------------------------------------------------------- ops
def best_time(fn: Callable[[], Any], repeat: int,
              device: torch.device) -> Tuple[float, Any]:
    """The fastest wall time of ``repeat`` runs after one warm-up, and the
    result."""
    out = fn()
    times = []
    for _ in range(repeat):
        wall, _, out = measure(fn, device)
        times.append(wall)
    return min(times), out


def clustered(num_classes: int, num: int, dim: int,
              g: torch.Generator) -> torch.Tensor:
    """ReLU'd Gaussian mixtures (15 modes a class), like pooled features."""
    modes = torch.randn(num_classes, 15, dim, generator=g)
    pick = torch.randint(15, (num_classes, num), generator=g)
    x = modes[torch.arange(num_classes)[:, None], pick]
    return torch.relu(x + 0.7 * torch.randn(x.shape, generator=g))


# ---------------------------------------------------------------- (a) k-means
def bench_kmeans(args, device, sizes: List[Tuple[int, int, int]]) -> None:
    from sklearn.cluster import KMeans
    print('\n(a) k-means, K=10: ours (batched, all classes) vs scikit-learn '
          'KMeans class by class (same number of k-means++ restarts)')
    print(f'{"classes x entries x D":>24} {"n_init":>6} {"ours s":>8} '
          f'{"sklearn s":>9} {"speed-up":>8} {"inertia ours/skl":>16}')
    g = torch.Generator().manual_seed(args.seed)
    for num_classes, num, dim in sizes:
        x = clustered(num_classes, num, dim, g)
        xs = x.numpy()
        xd = x.to(device)
        for n_init in (1, 5):
            t_ours, (_, _, inertia) = best_time(
                lambda: batched_kmeans(xd, None, 10, n_init=n_init),
                args.repeat, device)
            start = time.perf_counter()
            skl = [
                KMeans(10, n_init=n_init,
                       random_state=args.seed).fit(xs[c]).inertia_
                for c in range(num_classes)
            ]
            t_skl = time.perf_counter() - start
            ratio = float(inertia.sum()) / sum(skl)
            print(f'{f"{num_classes} x {num} x {dim}":>24} {n_init:>6} '
                  f'{t_ours:8.3f} {t_skl:9.3f} {t_skl / t_ours:7.1f}x '
                  f'{ratio:16.4f}')


# ---------------------------------------------------------- (b) the RSC loss
def loop_rsc(feats, classes, partner, omega, bank, bank_cls, tau):
    """Eq. 4-6 region by region and positive by positive."""
    terms = []
    for i in range(feats.shape[0]):
        p = int(partner[i])
        w = float(omega[i])
        f = w * feats[i] + (1 - w) * feats[p] if p != i else feats[i]
        sims = (bank @ f) / (bank.norm(dim=1) * f.norm()) / tau
        parts = []
        for cls, weight in ((int(classes[i]), w if p != i else 1.0),
                            (int(classes[p]), 1 - w)):
            if p == i and weight == 0:
                continue
            is_pos = bank_cls == cls
            if not bool(is_pos.any()) or bool(is_pos.all()):
                continue
            neg = torch.exp(sims[~is_pos]).sum()
            nce = []
            for s in sims[is_pos]:
                nce.append(-torch.log(torch.exp(s) / (torch.exp(s) + neg)))
            parts.append(weight * sum(nce) / len(nce))
            if p == i:
                break
        if parts:
            terms.append(sum(parts))
    return sum(terms) / len(terms)


def bench_loss(args, device, banks: Dict[str, Tuple[int, int]],
               dims: List[int]) -> None:
    print('\n(b) RSC loss with mixup, 8 images x 2 tags, forward + backward: '
          'ours vs a per-region, per-positive loop (same partners and '
          'weights)')
    print(f'{"bank":>22} {"D":>5} {"ours s":>8} {"loop s":>8} '
          f'{"speed-up":>8} {"|ours-loop|":>11}')
    g = torch.Generator().manual_seed(args.seed)
    loss = RegionContrastLoss()
    for name, (num_classes, entries) in banks.items():
        for dim in dims:
            bank = torch.relu(torch.randn(entries, dim, generator=g))
            bank_cls = torch.randint(num_classes, (entries, ), generator=g)
            feats = torch.relu(torch.randn(16, dim, generator=g))
            classes = torch.randint(num_classes, (16, ), generator=g)
            images = torch.arange(16) // 2
            partner, omega = loss.sample_mixup(
                classes, images,
                torch.Generator().manual_seed(args.seed))
            bank_d, cls_d = bank.to(device), bank_cls.to(device)

            def ours():
                f = feats.to(device).requires_grad_()
                out = loss.mixup_loss(f,
                                      classes.to(device), partner.to(device),
                                      omega.to(device), bank_d, cls_d)
                out.backward()
                return out.detach().cpu()

            def loop():
                f = feats.clone().requires_grad_()
                out = loop_rsc(f, classes, partner, omega, bank, bank_cls,
                               loss.temperature)
                out.backward()
                return out.detach()

            t_ours, v_ours = best_time(ours, args.repeat, device)
            start = time.perf_counter()
            v_loop = loop()
            t_loop = time.perf_counter() - start
            print(f'{name:>22} {dim:>5} {t_ours:8.4f} {t_loop:8.3f} '
                  f'{t_loop / t_ours:7.0f}x '
                  f'{abs(float(v_ours) - float(v_loop)):11.2e}')


# -------------------------------------------------------- (c) the bank itself
def bench_bank(args, device, datasets: Dict[str, tuple],
               dims: List[int]) -> None:
    print('\n(c) bank: update of 16 regions (steady state, bank full), '
          'bytes, float16 storage effect on the RSC loss')
    print(f'{"dataset":>8} {"slots":>7} {"D":>5} {"dtype":>8} '
          f'{"update ms":>9} {"MB":>8} {"loss":>10} {"|f16-f32|":>10}')
    g = torch.Generator().manual_seed(args.seed)
    loss = RegionContrastLoss(use_mixup=False)
    for name, (images, classes, mean_tags, cap) in datasets.items():
        tags = synthetic_tags(classes, images, mean_tags, g)
        pairs = tags.nonzero()
        for dim in dims:
            ref_value = None
            fill = pairs[torch.randperm(len(pairs), generator=g)]
            seed = int(torch.randint(2**31, (1, ), generator=g))
            pick = pairs[torch.randint(len(pairs), (16, ), generator=g)]
            batch = (torch.relu(torch.randn(16, dim, generator=g)).to(device),
                     pick[:, 1].to(device), pick[:, 0].to(device))
            for dtype in ('float32', 'float16'):
                # The same updates in both storage dtypes: fill the bank
                # (evicting in capped classes), then time a batch of 16.
                bank = RegionMemoryBank(
                    num_classes=classes,
                    feat_dim=dim,
                    capacity_per_class=cap,
                    storage_dtype=dtype).to(device)
                bank.allocate(tags)
                fill_g = torch.Generator().manual_seed(seed)
                for s in range(0, len(fill), 4096):
                    part = fill[s:s + 4096].to(device)
                    feats = torch.relu(
                        torch.randn(len(part), dim, generator=fill_g))
                    bank.update(feats.to(device), part[:, 1], part[:, 0])
                t_upd, _ = best_time(lambda: bank.update(*batch),
                                     max(args.repeat, 5), device)
                entries, entry_cls = bank.written_entries()
                value = float(
                    loss(batch[0], batch[1],
                         torch.arange(16, device=device) // 2, entries,
                         entry_cls))
                if dtype == 'float32':
                    ref_value, delta = value, ''
                else:
                    delta = f'{abs(value - ref_value):10.2e}'
                print(f'{name:>8} {bank.feats.shape[0]:>7} {dim:>5} '
                      f'{dtype:>8} {t_upd * 1e3:9.2f} '
                      f'{bank.nbytes / 2**20:8.1f} {value:10.5f} {delta:>10}')


def run_ops(args: argparse.Namespace, device: torch.device) -> None:
    if args.quick:
        kmeans_sizes = [(8, 100, 32), (8, 100, 128)]
        banks = {'small (10 cls)': (10, 600)}
        loss_dims = [64]
        datasets = {'voc': (300, 20, 1.5, None), 'coco': (600, 80, 2.9, 20)}
        bank_dims = [64]
    else:
        kmeans_sizes = [(80, 500, 512), (80, 500, 4096)]
        banks = {'VOC 15k (20 cls)': (20, 15000), 'COCO 80x500': (80, 40000)}
        loss_dims = [512, 4096]
        datasets = {
            'voc': (10582, 20, 1.5, None),
            'coco': (82783, 80, 2.9, 500)
        }
        bank_dims = [512, 4096]
    bench_kmeans(args, device, kmeans_sizes)
    bench_loss(args, device, banks, loss_dims)
    bench_bank(args, device, datasets, bank_dims)
    print(machine_line(device))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='What RCA costs: the training step, the bank-dependent '
        'part, and its operations against references')
    modes = parser.add_subparsers(dest='mode', required=True)
    step = add_benchmark_options(
        modes.add_parser(
            'step',
            help='one training step, CAM vs RCA (vs RCA with a float16 '
            'bank), interleaved'))
    step.add_argument(
        '--config',
        help=f'CAM config whose model is timed, and made RCA (default: '
        f'{DEFAULT_CONFIG}; with --quick {QUICK_CONFIG})')
    step.add_argument(
        '--bank', nargs='+', choices=sorted(BANKS), default=['voc', 'coco'])
    step.add_argument('--batch', type=int, default=8, help='paper: 8')
    step.add_argument(
        '--input-size',
        type=int,
        default=321,
        help='square input side (paper: 321)')
    step.add_argument('--warmup', type=int, default=2)
    step.add_argument(
        '--repeat',
        type=int,
        default=5,
        help='timed steps per variant (median reported)')
    step.add_argument(
        '--fp16',
        action='store_true',
        help='also time a float16 bank, and print the '
        'effect on the RSC loss value')
    step.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='N',
        help='after the timing, profile one more step of each variant and '
        'print its N most expensive operators')
    sweep = add_benchmark_options(
        modes.add_parser(
            'sweep',
            help='the RSC loss + bank update alone against bank sizes and '
            'D'))
    sweep.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[1000, 10000, 40000],
        help='written bank entries')
    sweep.add_argument(
        '--dims', type=int, nargs='+', default=[128, 512, 4096], help='D')
    sweep.add_argument(
        '--regions',
        type=int,
        default=12,
        help='regions per step (8 images x 1.5)')
    sweep.add_argument(
        '--repeat',
        type=int,
        default=5,
        help='timed steps per cell (median reported)')
    sweep.add_argument('--plot', help='PNG of the sweep')
    ops = add_benchmark_options(
        modes.add_parser(
            'ops',
            help='k-means, RSC loss and bank update against references'))
    ops.add_argument(
        '--repeat',
        type=int,
        default=3,
        help='timed runs of our implementation (best kept)')
    args = parser.parse_args()
    if args.mode == 'step':
        args.config = args.config or (QUICK_CONFIG
                                      if args.quick else DEFAULT_CONFIG)
        if args.quick:
            args.bank, args.batch = ['tiny'], 2
            args.input_size, args.warmup, args.repeat = 64, 1, 2
        if (min(args.batch, args.input_size, args.repeat) < 1
                or args.warmup < 0):
            parser.error('--batch, --input-size and --repeat must be >= 1, '
                         '--warmup >= 0')
    if args.mode == 'sweep' and args.quick:
        args.sizes, args.dims, args.repeat = [200, 1000], [64, 128], 2
    if args.mode != 'ops' and args.quick:
        args.threads = args.threads or 1
    return args


def main() -> None:
    args = parse_args()
    device = start_benchmark(args)
    dict(step=run_steps, sweep=run_sweep, ops=run_ops)[args.mode](args, device)


if __name__ == '__main__':
    main()
