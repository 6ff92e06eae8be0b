import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from rca_mm.utils import register_all_modules
from rca_mm.utils.setup_env import pin_sampler_seeds


@pytest.fixture(autouse=True)
def restore_default_scope():
    """Leave the process's current default scope as the test found it."""
    before = DefaultScope.get_current_instance()
    yield
    if before is not None:
        DefaultScope.get_instance(
            f'_restored_{id(before)}_{len(DefaultScope._instance_dict)}',
            scope_name=before.scope_name)


def test_register_all_modules_imports_packages_and_sets_scope():
    register_all_modules()
    for pkg in ('datasets', 'engine', 'evaluation', 'models', 'visualization'):
        assert f'rca_mm.{pkg}' in sys.modules
    assert DefaultScope.get_current_instance().scope_name == 'rca_mm'


def test_register_all_modules_switches_from_another_scope():
    DefaultScope.get_instance('_probe_mmseg_scope', scope_name='mmseg')
    with pytest.warns(UserWarning, match='"mmseg" is not "rca_mm"'):
        register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'rca_mm'


def test_register_all_modules_can_leave_the_scope_alone():
    DefaultScope.get_instance('_probe_mmseg_scope_2', scope_name='mmseg')
    register_all_modules(init_default_scope=False)
    assert DefaultScope.get_current_instance().scope_name == 'mmseg'


def test_pin_sampler_seeds_gives_samplers_the_run_seed():
    cfg = Config(
        dict(
            randomness=dict(seed=3, diff_rank_seed=True),
            train_dataloader=dict(
                sampler=dict(type='DefaultSampler', shuffle=True)),
            val_dataloader=dict(
                sampler=dict(type='DefaultSampler', shuffle=False, seed=7)),
            test_dataloader=None))
    pin_sampler_seeds(cfg)
    assert cfg.train_dataloader.sampler.seed == 3
    assert cfg.val_dataloader.sampler.seed == 7  # the config's own kept
    assert cfg.test_dataloader is None
    for randomness in (dict(seed=None, diff_rank_seed=True),
                       dict(seed=3, diff_rank_seed=False), dict(seed=3)):
        cfg = Config(
            dict(
                randomness=randomness,
                train_dataloader=dict(sampler=dict(type='DefaultSampler'))))
        pin_sampler_seeds(cfg)
        assert 'seed' not in cfg.train_dataloader.sampler, randomness


class _ToyDataset(Dataset):
    """Draws from numpy in the pipeline, as random augmentation does."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        return dict(
            inputs=torch.tensor([index / 16,
                                 float(np.random.rand())]),
            target=torch.tensor(float(index % 3)))


class _ToyModel(BaseModel):
    """Dropout: draws from torch."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 4)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(4, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        x = self.out(self.drop(self.fc(torch.stack(inputs))))[:, 0]
        if mode == 'loss':
            return dict(loss=((x - torch.stack(target))**2).mean())
        return x


def _train_toy(work_dir, randomness, pin):
    torch.manual_seed(1)  # the same initial weights in every run
    kwargs = dict(
        model=_ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=None),
        randomness=randomness,
        experiment_name=f'toy_{work_dir.name}',
        default_scope='mmengine')
    if pin:
        pin_sampler_seeds(kwargs)
    runner = Runner(**kwargs)
    model = runner.train()
    return runner.train_dataloader.sampler.seed, model.state_dict()


def test_single_process_unchanged_by_diff_rank_seed(tmp_path):
    # mmengine's diff_rank_seed keeps rank 0's seed (seed + 0) but builds
    # the samplers with seed=None: they draw a seed from numpy. With
    # pin_sampler_seeds a single process trains exactly as without
    # diff_rank_seed.
    before_seed, before = _train_toy(tmp_path / 'a', dict(seed=0), False)
    randomness = dict(seed=0, diff_rank_seed=True)
    pinned_seed, pinned = _train_toy(tmp_path / 'b', randomness, True)
    assert before_seed == pinned_seed == 0
    for key in before:
        assert torch.equal(before[key], pinned[key]), key
    unpinned_seed, unpinned = _train_toy(tmp_path / 'c', randomness, False)
    assert unpinned_seed != 0
    assert not all(torch.equal(before[k], unpinned[k]) for k in before)
