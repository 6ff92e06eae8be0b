"""Distributed start-up that also works on machines with no CUDA device."""
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
