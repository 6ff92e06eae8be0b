import json
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from torch.nn.parallel import DistributedDataParallel

from rca_mm.utils import init_cpu_distributed
from rca_mm.utils.dist_utils import finish_distributed

from ..conftest import free_port

cpu_only = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the CPU-only start-up path')


@pytest.fixture
def single_process_env(monkeypatch):
    """torchrun's environment for a world of one; tears the group down."""
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@cpu_only
def test_init_cpu_distributed_starts_gloo_and_fixes_wrapper(
        single_process_env):
    cfg = Config(dict(find_unused_parameters=True))
    assert init_cpu_distributed(cfg)
    assert dist.get_backend() == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=True,
        device_ids=None)
    # Already initialised: a second call changes nothing.
    other = Config()
    assert not init_cpu_distributed(other)
    assert 'model_wrapper_cfg' not in other


@cpu_only
def test_user_wrapper_keeps_its_settings(single_process_env):
    cfg = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                find_unused_parameters=True)))
    init_cpu_distributed(cfg)
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    assert cfg.model_wrapper_cfg.device_ids is None


# finish_distributed: no rank leaves before every rank has torn down.
class _Holder:
    """A reference cycle holding a DDP model, as a finished Runner does."""

    def __init__(self, model):
        self.model, self.me = model, self


def _worker(rank, tmp):
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp}/store', rank=rank, world_size=2)
    model = DistributedDataParallel(torch.nn.Linear(2, 1))
    model(torch.ones(4, 2)).sum().backward()
    _Holder(model)
    del model
    times = {}
    destroy = dist.destroy_process_group

    def slow_destroy():
        if rank == 1:  # the slower rank tears down later
            time.sleep(1.0)
        destroy()
        times['destroyed'] = time.time()

    dist.destroy_process_group = slow_destroy
    finish_distributed(timeout=60)
    times['returned'] = time.time()
    times['initialized'] = dist.is_initialized()
    with open(f'{tmp}/{rank}.json', 'w') as f:
        json.dump(times, f)


def test_no_rank_returns_before_every_rank_destroyed_its_group(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path), ), nprocs=2, join=True)
    rank0, rank1 = (
        json.loads((tmp_path / f'{r}.json').read_text()) for r in (0, 1))
    assert not rank0['initialized'] and not rank1['initialized']
    assert rank0['returned'] >= rank1['destroyed']
    assert rank1['returned'] >= rank1['destroyed']
