"""AtomicCheckpointHook (through AtomicLocalBackend) and RNGStateHook on a
tiny Runner: a write that dies midway leaves the previous checkpoint and
``last_checkpoint`` usable."""
import os
import random

import numpy as np
import pytest
import torch

import rca_mm.fileio.atomic as fileio
from rca_mm.engine.hooks.rng_state_hook import get_rng_state, set_rng_state
from rca_mm.fileio import AtomicLocalBackend
from rca_mm.utils.safe_checkpoint import safe_torch_load
from .test_nan_guard_hook import ToyModel, toy_runner


def test_kill_while_saving_leaves_the_previous_checkpoint(
        tmp_path, monkeypatch):
    runner = toy_runner(
        tmp_path,
        ToyModel(),
        max_epochs=2,
        rng_state=dict(type='rca_mm.RNGStateHook'))
    real_put = AtomicLocalBackend.put

    def put(self, obj, filepath):
        if str(filepath).endswith('epoch_2.pth'):
            with fileio.atomic_open(str(filepath), 'wb') as f:
                f.write(obj[:len(obj) // 2])
                raise KeyboardInterrupt('killed while saving')
        real_put(self, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', put)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last.endswith('epoch_1.pth')
    ckpt = safe_torch_load(last)  # complete, and weights_only-loadable
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 4
    # The RNG states of the one process, at the end of epoch 1.
    (state, ) = ckpt['meta']['rng_state']
    assert state['torch'].dtype == torch.uint8
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]


def test_rng_state_round_trip():
    state = get_rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert draws[:2] == again[:2] and torch.equal(draws[2], again[2])
