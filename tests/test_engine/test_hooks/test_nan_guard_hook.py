"""NaNGuardHook: stop at the first non-finite loss, keep the last good
checkpoint (a tiny mmengine Runner on a linear model)."""
import itertools
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

import rca_mm.engine  # noqa: F401
from rca_mm.engine.hooks import NonFiniteLossError
from rca_mm.utils.safe_checkpoint import safe_torch_load


class ToyModel(BaseModel):
    """loss = mean((w x - y)^2), NaN from iteration ``nan_at`` (1-based)."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, inputs, targets, mode='tensor'):
        self.calls += 1
        out = self.linear(inputs)
        loss = ((out - targets)**2).mean()
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float('nan')
        return dict(loss=loss)


def toy_data(n=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return [
        dict(inputs=x[i], targets=x[i].sum(0, keepdim=True)) for i in range(n)
    ]


_RUN_IDS = itertools.count()


def toy_runner(work_dir, model, max_epochs=3, **hooks):
    # A name of its own: runners built in the same second would otherwise
    # share mmengine's message hub (and its last checkpoint).
    return Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'toy_{next(_RUN_IDS)}_{osp.basename(work_dir)}',
        train_dataloader=dict(
            dataset=toy_data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(
                type='rca_mm.AtomicCheckpointHook',
                interval=1,
                max_keep_ckpts=1),
            logger=dict(type='LoggerHook', interval=1),
            **hooks),
        custom_hooks=[dict(type='rca_mm.NaNGuardHook')],
        default_scope='rca_mm')


def test_stops_at_the_nan_iteration_and_keeps_the_last_good_checkpoint(
        tmp_path):
    # 4 iterations per epoch: epoch 1 ends at 4, the NaN comes at 6.
    runner = toy_runner(tmp_path, ToyModel(nan_at=6))
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    msg = str(err.value)
    assert 'iteration 6 (epoch 2, batch 2)' in msg and 'loss=nan' in msg
    assert osp.join(str(tmp_path), 'epoch_1.pth') in msg
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    ckpt = safe_torch_load(str(tmp_path / 'epoch_1.pth'))
    assert ckpt['meta']['iter'] == 4
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())
    assert open(tmp_path / 'last_checkpoint').read().endswith('epoch_1.pth')


def test_nan_before_any_checkpoint_says_so(tmp_path):
    runner = toy_runner(tmp_path, ToyModel(nan_at=1))
    with pytest.raises(
            NonFiniteLossError,
            match='iteration 1 .*no checkpoint had been written'):
        runner.train()


def test_finite_losses_pass_and_bad_interval(tmp_path):
    runner = toy_runner(tmp_path, ToyModel(), max_epochs=1)
    runner.train()
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    from rca_mm.registry import HOOKS
    with pytest.raises(ValueError, match='interval must be >= 1'):
        HOOKS.build(dict(type='NaNGuardHook', interval=0))
