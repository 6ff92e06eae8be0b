import json
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from torch.nn.parallel import DistributedDataParallel

from rca_mm.utils import init_cpu_distributed
from rca_mm.utils.dist_utils import (check_cpu_fallback, finish_distributed,
                                     gpu_signs)
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


# A GPU machine whose CUDA torch cannot use: no silent CPU fallback.
@pytest.fixture
def no_cuda(monkeypatch, tmp_path):
    """CUDA unusable, no GPU sign: ``nvidia-smi`` off the PATH, no
    ``/dev/nvidia0``, ``CUDA_VISIBLE_DEVICES`` and the opt-in unset.
    Returns a function that adds a sign."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('PATH', str(tmp_path / 'empty-bin'))
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    monkeypatch.delenv('RCA_MM_ALLOW_CPU', raising=False)
    real_exists = os.path.exists
    monkeypatch.setattr(
        os.path, 'exists', lambda p: False
        if p == '/dev/nvidia0' else real_exists(p))

    def add_sign(sign):
        if sign == 'nvidia-smi':
            bin_dir = tmp_path / 'bin'
            bin_dir.mkdir(exist_ok=True)
            smi = bin_dir / 'nvidia-smi'
            smi.write_text('#!/bin/sh\nexit 9\n')
            smi.chmod(0o755)
            monkeypatch.setenv('PATH', str(bin_dir))
            return str(smi)
        if sign == '/dev/nvidia0':
            monkeypatch.setattr(
                os.path, 'exists', lambda p: True
                if p == '/dev/nvidia0' else real_exists(p))
            return '/dev/nvidia0'
        monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1')
        return 'CUDA_VISIBLE_DEVICES=0,1'

    return add_sign


def test_a_machine_without_gpus_has_no_sign(no_cuda):
    assert gpu_signs() == []
    check_cpu_fallback()  # nothing to refuse


@pytest.mark.parametrize(
    'sign', ['nvidia-smi', '/dev/nvidia0', 'CUDA_VISIBLE_DEVICES'])
def test_cpu_fallback_refused_where_gpus_are_expected(no_cuda, sign,
                                                      single_process_env):
    shown = no_cuda(sign)
    assert any(shown in s for s in gpu_signs())
    cfg = Config()
    with pytest.raises(RuntimeError) as info:
        init_cpu_distributed(cfg)
    message = str(info.value)
    assert shown in message
    assert 'torch cannot use CUDA' in message
    assert 'RCA_MM_ALLOW_CPU=1' in message and 'nvidia-smi' in message
    assert not dist.is_initialized()  # refused before gloo started
    assert 'model_wrapper_cfg' not in cfg


@pytest.mark.parametrize('value', ['1', 'true'])
def test_cpu_on_purpose_with_the_opt_in(no_cuda, value, monkeypatch,
                                        single_process_env):
    no_cuda('nvidia-smi')
    no_cuda('CUDA_VISIBLE_DEVICES')
    monkeypatch.setenv('RCA_MM_ALLOW_CPU', value)
    assert init_cpu_distributed(Config())
    assert dist.get_backend() == 'gloo'


@pytest.mark.parametrize('hidden', ['', '-1', 'NoDevFiles'])
def test_gpus_hidden_on_purpose_run_on_cpu(no_cuda, hidden, monkeypatch):
    no_cuda('nvidia-smi')
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', hidden)
    assert gpu_signs() == []
    check_cpu_fallback()


def test_usable_cuda_is_never_refused(no_cuda, monkeypatch):
    no_cuda('/dev/nvidia0')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    check_cpu_fallback()
