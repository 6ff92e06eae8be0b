import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.runner import BaseLoop

from rca_mm.engine.hooks import RCAHook
from rca_mm.models.memory import batched_kmeans
from rca_mm.registry import MODELS


class _Dataset:

    def __init__(self, tags):
        self.tags = tags

    def __len__(self):
        return len(self.tags)

    def get_data_info(self, idx):
        return dict(img_labels=self.tags[idx], sample_idx=idx)


class _Loop(BaseLoop):
    """A built train loop, as ``Runner.train`` has before ``before_run``."""

    def __init__(self):  # no runner, no dataloader
        pass

    def run(self):
        pass


def _runner(tags, epoch=0, **head):
    model = nn.Module()
    model.head = MODELS.build(
        dict(type='RCAHead', in_channels=4, num_classes=3, **head))
    return SimpleNamespace(
        model=model,
        epoch=epoch,
        _train_loop=_Loop(),
        train_dataloader=SimpleNamespace(dataset=_Dataset(tags)),
        logger=logging.getLogger('test'))


class _TestRunner:
    """A runner in ``Runner.test``: the train config is not built, and
    building it (``train_dataloader``) is an error here."""

    def __init__(self, train_cfg):
        self.model = _runner([[0]]).model
        self._train_loop = train_cfg

    @property
    def train_dataloader(self):
        raise AssertionError('a test run built the training set')


@pytest.mark.parametrize('train_cfg', [dict(type='EpochBasedTrainLoop'), None])
def test_a_test_run_builds_no_training_set_and_no_bank(train_cfg):
    runner = _TestRunner(train_cfg)
    RCAHook().before_run(runner)
    assert not runner.model.head.memory_bank.is_allocated


def test_allocates_from_dataset_tags_and_clusters_each_epoch():
    tags = [[0, 2], [1], [0], [2], [0, 1]]
    runner = _runner(
        tags,
        aggregation=dict(
            type='PrototypeAggregation',
            num_prototypes=2,
            start_epoch=1,
            seed=3))
    hook = RCAHook()
    hook.before_run(runner)
    bank = runner.model.head.memory_bank
    # adaptive size: one slot per (image, tag) pair
    assert bank.feats.shape == (7, 4)
    hook.before_train_epoch(runner)  # epoch 0: nothing clustered
    assert not runner.model.head.aggregation.has_prototypes
    torch.manual_seed(0)
    feats = torch.randn(7, 4)
    classes = torch.tensor([0, 2, 1, 0, 2, 0, 1])
    images = torch.tensor([0, 0, 1, 2, 3, 4, 4])
    bank.update(feats, classes, images, torch.ones(7, dtype=torch.bool))
    runner.epoch = 1
    hook.before_train_epoch(runner)
    agg = runner.model.head.aggregation
    entries, mask = bank.per_class_entries()
    expected, valid, _ = batched_kmeans(entries, mask, 2, n_init=3, seed=4)
    assert torch.allclose(agg.prototypes, expected)
    assert torch.equal(agg.prototype_valid, valid)
    # class 0 has 3 entries -> 2 prototypes; classes 1, 2 have 2 each.
    assert agg.prototype_valid.sum() == 6


def test_refuses_a_plain_cam_head_and_untagged_datasets():
    runner = _runner([[0]])
    runner.model.head = MODELS.build(
        dict(type='CAMHead', in_channels=4, num_classes=3))
    with pytest.raises(TypeError, match='RCAHead'):
        RCAHook().before_run(runner)
    runner = _runner([[0]])
    runner.train_dataloader.dataset.get_data_info = lambda i: {}
    with pytest.raises(KeyError, match='img_labels'):
        RCAHook().before_run(runner)


def test_rsc_warmup_switches_contrast_on_after_warmup():
    runner = _runner([[0]], rsc_warmup_epochs=2)
    hook = RCAHook()
    for epoch, active in [(0, False), (1, False), (2, True)]:
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        assert runner.model.head.rsc_active is active


def test_settings_given_to_the_hook_name_the_head_keys():
    """RCAHook takes no settings; the error names what it was given and the
    model.head keys that hold RCA's settings."""
    with pytest.raises(ValueError) as error:
        RCAHook(num_prototypes=50, warmup_epochs=2)
    message = str(error.value)
    assert "['num_prototypes', 'warmup_epochs']" in message
    assert 'model.head.aggregation.num_prototypes' in message
    assert 'model.head.rsc_warmup_epochs' in message


@pytest.mark.parametrize('name', ['RegionMemoryHook', 'RSCWarmupHook'])
def test_the_replaced_hooks_are_not_registered(name):
    """The hooks RCAHook replaced are gone: a config that lists one fails
    at the registry, naming the type."""
    from mmengine.registry import init_default_scope

    from rca_mm.registry import HOOKS
    init_default_scope('rca_mm')
    assert HOOKS.get(name) is None
    with pytest.raises(KeyError, match=name):
        HOOKS.build(dict(type=name))
