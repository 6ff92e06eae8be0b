"""Distributed start-up that also works on machines with no CUDA device,
and the teardown at the end of a run."""
import gc
import time

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

    Args:
        cfg (Config): the run's config; ``model_wrapper_cfg`` is set or
            completed in place.

    Returns:
        bool: True when this call initialised the CPU process group.
    """
    if torch.cuda.is_available() or dist.is_initialized():
        return False
    dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg.setdefault('device_ids', None)
    return True


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
    _store_barrier(store, 'finish_distributed/destroyed', world_size,
                   timeout)
    if rank > 0:
        store.add('finish_distributed/left', 1)
    else:
        _store_barrier(store, 'finish_distributed/left', world_size - 1,
                       timeout, add=False)


def _store_barrier(store: dist.Store, key: str, count: int, timeout: float,
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
