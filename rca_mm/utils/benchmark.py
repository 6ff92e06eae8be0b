"""The opening the benchmarks of ``tools/analysis_tools/`` share: their
common options, the machine they ran on, a config with random weights,
synthetic image tags, and the clocks."""
import argparse
import os
import os.path as osp
import platform
import time
from typing import Any, Callable, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope


def benchmark_parser(description: str,
                     *,
                     config: Optional[str] = None,
                     device: bool = True) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes.

    ``--threads``, ``--seed`` and ``--quick``; ``--device`` unless
    ``device`` is False; ``--config`` (default ``config``) when a config is
    given.
    """
    parser = argparse.ArgumentParser(description=description)
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
