"""RCA's epoch events on a real mmengine Runner, with the shipped defaults.

The full SynthVOC RCA config (configs/synthvoc/rca_r18-w16_8e_synthvoc-
112x112.py, the model and hooks as users get them) trains 3 epochs of 8
steps on 120 tiny images (enough for classes with more bank entries than
K, where the k-means settings show); test-only spy hooks observe, at the
lowest and highest priorities, what RCA's hooks did at each event:

- the bank is allocated in ``before_run`` (before a checkpoint could be
  loaded), one slot per (image, tag) pair;
- the contrast (alpha_1 of Eq. 11) is off for the first epoch only;
- the prototypes are clustered from epoch 1 on, with K = 10, 50 Lloyd
  iterations, 3 k-means++ restarts and the seed ``0 + epoch``;
- a validation loop leaves the torch, numpy and Python generators as it
  found them.

Only ``state_dict`` keys and the bank's public reads are inspected, so the
tests do not depend on which hook or method carries the events out.
"""
import random

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from rca_mm.models.memory import batched_kmeans
from rca_mm.registry import HOOKS
from rca_mm.testing.tiny_runner import tiny_stage1_cfg, write_tiny_synthvoc
from rca_mm.utils.dist_utils import unwrap_model
from ...conftest import REPO

CONFIG = f'{REPO}/configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py'
EVENTS = []  # what the spies saw, in order


def _head(runner):
    return unwrap_model(runner.model).head


def _rng_states():
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _allocated(runner):
    return int(runner.model.state_dict()['head.memory_bank.feats'].shape[0])


@HOOKS.register_module()
class _Spy(Hook):
    """Records what RCA's hooks did: registered at the highest priority
    (``first``, before every other hook of an event) and at the lowest
    (``last``, after them)."""

    def __init__(self, where):
        self.where = where

    def before_run(self, runner):
        EVENTS.append((f'before_run:{self.where}', _allocated(runner)))

    def before_val(self, runner):
        if self.where == 'first':
            EVENTS.append(('before_val', _rng_states()))

    def after_val(self, runner):
        if self.where == 'last':
            EVENTS.append(('after_val', _rng_states()))

    def before_train_epoch(self, runner):
        if self.where != 'last':
            return
        bank = _head(runner).memory_bank
        state = runner.model.state_dict()
        entries, mask = bank.per_class_entries()
        EVENTS.append(
            ('epoch', runner.epoch,
             dict(
                 valid=state['head.aggregation.prototype_valid'].clone(),
                 prototypes=state['head.aggregation.prototypes'].clone(),
                 entries=entries.clone(),
                 mask=mask.clone())))

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if self.where == 'last':
            EVENTS.append(('loss_rsc', runner.epoch,
                           float(outputs['loss_rsc'].detach())))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_tiny_synthvoc(
        str(tmp_path_factory.mktemp('tiny') / 'synthvoc'), num_train=120)


def _train(data_root, work_dir, name, **kwargs):
    torch.set_num_threads(1)
    cfg = tiny_stage1_cfg(
        CONFIG,
        data_root,
        str(work_dir),
        name=name,
        batch_size=16,
        extra_hooks=[
            dict(type='_Spy', where='first', priority='HIGHEST'),
            dict(type='_Spy', where='last', priority='LOWEST')
        ],
        **kwargs)
    # Write every region (the paper's nu = 0.7 needs a trained P).
    cfg.model.head.gate_threshold = 0.0
    EVENTS.clear()
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, list(EVENTS)


@pytest.fixture(scope='module')
def trained(data_root, tmp_path_factory):
    return _train(
        data_root,
        tmp_path_factory.mktemp('work'),
        'rca_epoch_events',
        max_epochs=3)


def test_the_bank_is_allocated_in_before_run(trained):
    runner, events = trained
    (first, ), (last, ) = ([e[1] for e in events if e[0] == name]
                           for name in ('before_run:first', 'before_run:last'))
    assert first == 0  # built empty
    tags = runner.train_dataloader.dataset
    pairs = sum(
        len(tags.get_data_info(i)['img_labels']) for i in range(len(tags)))
    assert last == pairs > 0  # one slot per (image, tag) pair


def test_contrast_is_off_in_the_first_epoch_only(trained):
    _, events = trained
    by_epoch = {}
    for _, epoch, value in (e for e in events if e[0] == 'loss_rsc'):
        by_epoch.setdefault(epoch, []).append(value)
    assert sorted(by_epoch) == [0, 1, 2]
    assert all(v == 0.0 for v in by_epoch[0])  # warm-up: alpha_1 = 0
    assert all(v != 0.0 for v in by_epoch[1] + by_epoch[2])


def test_prototypes_are_clustered_from_epoch_1_with_the_defaults(trained):
    _, events = trained
    epochs = {e[1]: e[2] for e in events if e[0] == 'epoch'}
    assert sorted(epochs) == [0, 1, 2]
    assert not epochs[0]['valid'].any()  # epoch 0: no prototypes, F' = 0
    one_restart_differs = False
    for epoch in (1, 2):
        seen = epochs[epoch]
        assert seen['mask'].sum(1).max() > 10  # more entries than K

        def kmeans(n_init):
            return batched_kmeans(
                seen['entries'],
                seen['mask'],
                10,
                num_iters=50,
                n_init=n_init,
                seed=epoch)

        centers, valid, _ = kmeans(n_init=3)
        assert seen['prototypes'].shape[1] == 10  # K = 10
        assert torch.equal(seen['valid'], valid)
        assert torch.equal(seen['prototypes'], centers)
        single, _, _ = kmeans(n_init=1)
        one_restart_differs |= not torch.equal(single, centers)
    assert one_restart_differs  # the 3 restarts are observed


def test_a_validation_loop_leaves_the_generators_untouched(
        data_root, tmp_path):
    _, events = _train(
        data_root,
        tmp_path,
        'rca_epoch_events_val',
        max_epochs=1,
        val_interval=1)
    before = [e[1] for e in events if e[0] == 'before_val']
    after = [e[1] for e in events if e[0] == 'after_val']
    assert len(before) == len(after) == 1
    (t0, n0, p0), (t1, n1, p1) = before[0], after[0]
    assert torch.equal(t0, t1)
    assert n0[0] == n1[0] and np.array_equal(n0[1], n1[1]) and \
        n0[2:] == n1[2:]
    assert p0 == p1


def test_a_run_that_does_not_train_builds_no_training_set(data_root, tmp_path):
    """What Runner.test and Runner.val do before their loops: the hooks'
    before_run, the train config still unbuilt (no training set read, no
    bank); Runner.train builds the loop first and gets the bank."""
    cfg = tiny_stage1_cfg(
        CONFIG, data_root, str(tmp_path), name='no_train', batch_size=16)
    runner = Runner.from_cfg(cfg)
    runner.call_hook('before_run')
    assert isinstance(runner._train_loop, dict)
    assert _allocated(runner) == 0
    runner.train_loop  # noqa: B018 (what Runner.train builds first)
    runner.call_hook('before_run')
    assert _allocated(runner) > 0
