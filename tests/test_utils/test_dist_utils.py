import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from rca_mm.utils import init_cpu_distributed

from ..conftest import free_port

pytestmark = pytest.mark.skipif(
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


def test_user_wrapper_keeps_its_settings(single_process_env):
    cfg = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                find_unused_parameters=True)))
    init_cpu_distributed(cfg)
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    assert cfg.model_wrapper_cfg.device_ids is None
