"""Distributed start-up that also works on machines with no CUDA device,
and the teardown at the end of a run."""
import gc
import os
import shutil
import time
from typing import List, Mapping, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from torch import nn


def init_cpu_distributed(cfg: Config) -> bool:
    """Start a gloo process group for a ``--launcher pytorch`` run on CPU.

    mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its
    default DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail without
    CUDA. When no CUDA device is present this initialises the process group
    with gloo from torchrun's environment (the Runner then skips its own
    initialisation) and makes the DDP wrapper CPU-compatible
    (``device_ids=None``), keeping mmengine's other defaults.

    A machine that looks like it has GPUs but whose CUDA torch cannot use
    is refused (:func:`check_cpu_fallback`) unless ``RCA_MM_ALLOW_CPU=1``.

    Args:
        cfg (Config): the run's config; ``model_wrapper_cfg`` is set or
            completed in place.

    Returns:
        bool: True when this call initialised the CPU process group.

    Raises:
        RuntimeError: the machine looks like a GPU machine (see
            :func:`check_cpu_fallback`).
    """
    if torch.cuda.is_available() or dist.is_initialized():
        return False
    check_cpu_fallback()
    dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg.setdefault('device_ids', None)
    return True


ALLOW_CPU_ENV = 'RCA_MM_ALLOW_CPU'
_NO_DEVICES = ('', '-1', 'none', 'NoDevFiles')


def gpu_signs(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """What makes this machine look like it has NVIDIA GPUs.

    ``CUDA_VISIBLE_DEVICES`` naming devices, ``nvidia-smi`` on the
    ``PATH``, ``/dev/nvidia0``. ``CUDA_VISIBLE_DEVICES`` set to an empty
    value, ``-1`` or ``NoDevFiles`` (a scheduler's job without GPUs) hides
    the GPUs on purpose, which is asking for the CPU: then no sign is
    returned.

    Args:
        environ (Mapping[str, str], optional): the environment. Default:
            ``os.environ``.

    Returns:
        list[str]: one phrase per sign found; empty on a machine without
        GPUs or where they are hidden on purpose.
    """
    environ = os.environ if environ is None else environ
    visible = environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None and visible.strip() in _NO_DEVICES:
        return []
    signs = []
    if visible is not None:
        signs.append(f'CUDA_VISIBLE_DEVICES={visible}')
    smi = shutil.which('nvidia-smi', path=environ.get('PATH'))
    if smi:
        signs.append(f'{smi} exists')
    if os.path.exists('/dev/nvidia0'):
        signs.append('/dev/nvidia0 exists')
    return signs


def _cuda_error() -> str:
    """Why torch cannot start CUDA, in torch's words."""
    if torch.version.cuda is None:
        return (f'this torch ({torch.__version__}) is a CPU build with no '
                'CUDA support')
    try:
        torch.cuda.init()
    except Exception as error:  # torch raises several types here
        return f'torch {torch.__version__} (CUDA {torch.version.cuda}): ' \
            f'{error}'.strip()
    return (f'torch {torch.__version__} (CUDA {torch.version.cuda}) sees no '
            'usable device')


def check_cpu_fallback(environ: Optional[Mapping[str, str]] = None) -> None:
    """Refuse to run on CPU on a machine that looks like it has GPUs.

    Where CUDA is unusable (a driver older than the torch build needs, a
    CPU-only torch, ``CUDA_VISIBLE_DEVICES`` naming devices that do not
    exist), ``torch.cuda.is_available()`` is False and a distributed run
    would start gloo on CPU, about a hundred times slower, without an
    error. Running on CPU on purpose: ``RCA_MM_ALLOW_CPU=1``, or hide the
    GPUs with ``CUDA_VISIBLE_DEVICES=``.

    Args:
        environ (Mapping[str, str], optional): the environment. Default:
            ``os.environ``.

    Raises:
        RuntimeError: CUDA is unusable and :func:`gpu_signs` found signs of
            GPUs, without ``RCA_MM_ALLOW_CPU=1``.
    """
    environ = os.environ if environ is None else environ
    if torch.cuda.is_available():
        return
    if environ.get(ALLOW_CPU_ENV, '').strip().lower() in ('1', 'true', 'yes'):
        return
    signs = gpu_signs(environ)
    if not signs:
        return
    raise RuntimeError(
        'This machine looks like it has NVIDIA GPUs (' + '; '.join(signs) +
        ') but torch cannot use CUDA: ' + _cuda_error() + '. The run would '
        'fall back to gloo on CPU, about 100 times slower, so it stops '
        'here. Fix: a driver recent enough for this torch build (check '
        '`nvidia-smi` and `python -m rca_mm.utils.cuda_check`), a CUDA '
        'build of torch (tools/install.sh), or CUDA_VISIBLE_DEVICES naming '
        f'devices that exist. To run on CPU on purpose, set {ALLOW_CPU_ENV}=1 '
        '(or hide the GPUs with CUDA_VISIBLE_DEVICES=).')


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP (or other mmengine) wrapper."""
    return model.module if is_model_wrapper(model) else model


def finish_distributed(timeout: float = 300.) -> None:
    """Wait for every process, then tear the process group down so that
    no rank exits while another still tears its own down.

    .. code:: text

        barrier               every rank is done with collectives
        gc.collect()          the finished Runner's DDP wrapper (a cycle)
                              drops its reference to the group now, not
                              at interpreter exit
        destroy_process_group
        store: destroyed += 1, wait for world_size
        store: left += 1 (rank > 0); rank 0 waits for world_size - 1,
               as it may host the store

    A gloo group left alive until interpreter exit, or destroyed while a
    peer has already exited, can abort a process (``terminate called
    without an active exception``) after its work is done.

    Args:
        timeout (float): seconds to wait for the other ranks at the end.
            Default: 300.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    gc.collect()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    store = dist.distributed_c10d._get_default_store()
    dist.destroy_process_group()
    _store_barrier(store, 'finish_distributed/destroyed', world_size, timeout)
    if rank > 0:
        store.add('finish_distributed/left', 1)
    else:
        _store_barrier(
            store,
            'finish_distributed/left',
            world_size - 1,
            timeout,
            add=False)


def _store_barrier(store: dist.Store,
                   key: str,
                   count: int,
                   timeout: float,
                   add: bool = True) -> None:
    """Wait until the counter ``key`` of ``store`` reaches ``count``
    (incremented first when ``add``)."""
    done = store.add(key, 1 if add else 0)
    end = time.monotonic() + timeout
    while done < count:
        if time.monotonic() > end:
            raise TimeoutError(
                f'finish_distributed: {done} of {count} processes reached '
                f'{key!r} within {timeout:.0f} s')
        time.sleep(0.05)
        done = store.add(key, 0)
