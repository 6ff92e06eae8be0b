"""finish_distributed: no rank leaves before every rank has torn down."""
import json
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from rca_mm.utils import tool_utils


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
    tool_utils.finish_distributed(timeout=60)
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
