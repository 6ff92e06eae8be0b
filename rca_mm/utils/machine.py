"""The machine a benchmark ran on, as one printable line."""
import os
import os.path as osp
import platform
from typing import Optional

import torch


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
        device (torch.device, optional): the device measured; default CPU.
        extra (str): more ``; ``-separated facts, e.g. worker counts.
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
