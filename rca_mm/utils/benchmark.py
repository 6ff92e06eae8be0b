"""What the benchmarks of ``tools/analysis_tools/`` share: their common
options, the machine they ran on, a config with random weights, synthetic
image tags, the bank sizes and their filling, a training step, and the
clocks (one run, and variants interleaved)."""
import argparse
import os
import os.path as osp
import platform
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

# Region memory banks the benchmarks fill: name -> (classes, images, mean
# tags per image, per-class cap). ``voc``: one entry per (image, tag) of
# VOC's 10,582 training images; ``coco``: 80 classes x 500 entries
# (``capacity_per_class=500``); ``tiny``: seconds on a CPU.
BANKS: Dict[str, Tuple[int, int, float, Optional[int]]] = dict(
    voc=(20, 10582, 1.5, None),
    coco=(80, 82081, 2.9, 500),
    tiny=(20, 200, 1.5, None),
)


def benchmark_parser(description: str,
                     *,
                     config: Optional[str] = None,
                     device: bool = True) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes
    (:func:`add_benchmark_options`)."""
    return add_benchmark_options(
        argparse.ArgumentParser(description=description),
        config=config,
        device=device)


def add_benchmark_options(parser: argparse.ArgumentParser,
                          *,
                          config: Optional[str] = None,
                          device: bool = True) -> argparse.ArgumentParser:
    """Add the options every benchmark takes to ``parser`` (e.g. a
    subcommand's) and return it.

    ``--threads``, ``--seed`` and ``--quick``; ``--device`` unless
    ``device`` is False; ``--config`` (default ``config``) when a config is
    given.
    """
    if config is not None:
        parser.add_argument(
            '--config', default=config, help=f'config (default: {config})')
    if device:
        parser.add_argument(
            '--device', default='cpu', help='torch device measured')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU threads of torch and of the BLAS pools (default: '
        'torch\'s). On a CPU shared with other jobs use 1: multi-threaded '
        'ops then wait for busy cores and the timings scatter by 10x')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny sizes, to check that the script runs')
    return parser


def start_benchmark(args: argparse.Namespace, extra: str = '') -> torch.device:
    """Apply ``--threads`` and ``--seed``, check ``--device``, set the
    ``rca_mm`` scope and print the machine line; returns the device."""
    if args.threads:
        from threadpoolctl import threadpool_limits
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(getattr(args, 'device', 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    init_default_scope('rca_mm')
    print(machine_line(device, extra))
    return device


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform``'s."""
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown CPU'


def machine_line(device: Optional[torch.device] = None,
                 extra: str = '') -> str:
    """``machine: CPU ...; cores ...; torch threads ...; device ...; load``.

    Args:
        device (torch.device, optional): the device measured. Default: CPU.
        extra (str): more ``; ``-separated facts, e.g. worker counts.
            Default: ''.
    """
    device = torch.device(device or 'cpu')
    dev = str(device)
    if device.type == 'cuda':
        dev += f' ({torch.cuda.get_device_name(device)})'
    load = '/'.join(f'{x:.1f}' for x in os.getloadavg())
    extra = f'; {extra}' if extra else ''
    return (f'machine: CPU {cpu_model()}; cores {os.cpu_count()}; torch '
            f'threads {torch.get_num_threads()}; torch {torch.__version__}; '
            f'device {dev}{extra}; load average {load}')


def random_weights_config(filename: str) -> Config:
    """The config ``filename`` with its backbone left at random weights
    (timing does not depend on them, and no checkpoint is needed)."""
    if not osp.isfile(filename):
        raise FileNotFoundError(f'--config {filename!r} does not exist')
    cfg = Config.fromfile(filename)
    cfg.model.backbone.pop('init_cfg', None)
    return cfg


def synthetic_tags(num_classes: int, num_images: int, tags_per_image: float,
                   generator: torch.Generator) -> torch.Tensor:
    """Multi-hot tags ``(num_images, L)`` with about ``tags_per_image`` each,
    e.g. to size a region memory bank as a dataset's tags would.

    Every image has one uniformly drawn tag and each further tag with the
    probability that gives the requested mean.

    Args:
        num_classes (int): L, the foreground classes.
        num_images (int): the images.
        tags_per_image (float): the mean number of tags of an image, at
            least 1 (VOC: about 1.5, COCO: about 2.9).
        generator (torch.Generator): the source of the random draws.

    Returns:
        Tensor: ``(num_images, L)`` bool, on the CPU.
    """
    tags = torch.zeros(num_images, num_classes, dtype=torch.bool)
    first = torch.randint(num_classes, (num_images, ), generator=generator)
    tags[torch.arange(num_images), first] = True
    extra = (tags_per_image - 1) / max(num_classes - 1, 1)
    tags |= torch.rand(num_images, num_classes, generator=generator) < extra
    return tags


def fill_bank(bank: torch.nn.Module,
              tags: torch.Tensor,
              generator: torch.Generator,
              chunk: int = 2048) -> None:
    """Allocate a ``RegionMemoryBank`` from ``tags`` and write a random
    entry into every slot.

    Args:
        bank (RegionMemoryBank): the bank, on its device.
        tags (Tensor): ``(N, L)`` bool image tags (:func:`synthetic_tags`).
        generator (torch.Generator): the source of the entries, which are
            uniform in [0, 1) (non-negative, like ReLU'd features).
        chunk (int): entries written per ``update`` call. Default: 2048.
    """
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
        feats = torch.rand(
            part.shape[0], bank.feat_dim, generator=generator).to(device)
        bank.update(feats, part[:, 0].to(device), part[:, 1].to(device),
                    torch.ones(part.shape[0], dtype=torch.bool, device=device))


def step_fn(model: torch.nn.Module, inputs: torch.Tensor, samples: list,
            device: torch.device) -> Callable[[], Tuple[float, float]]:
    """A closure running one SGD training step of ``model`` (its
    ``loss``, backward, the step) on one batch; it returns the step's wall
    and process CPU seconds."""
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
    """Run every closure ``warmup + repeat`` times, alternating the order
    each round, so that a change of the machine's load falls on all of
    them; the timed ``(wall, cpu)`` seconds of each, warm-up left out."""
    times = {name: [] for name in fns}
    names = list(fns)
    for i in range(warmup + repeat):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            t = fns[name]()
            if i >= warmup:
                times[name].append(t)
    return times


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], Any],
            device: torch.device) -> Tuple[float, float, Any]:
    """Run ``fn`` once: its wall and process CPU seconds, and its result."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def cost(wall: float, cpu: float, device: torch.device) -> float:
    """The seconds that measure a step's cost: process CPU time on a CPU
    (wall time includes waiting for cores shared with other jobs), the
    synchronised wall time on a GPU."""
    return cpu if device.type == 'cpu' else wall


def cost_name(device: torch.device) -> str:
    """``'CPU'`` or ``'wall'``: the clock :func:`cost` reads."""
    return 'CPU' if device.type == 'cpu' else 'wall'
