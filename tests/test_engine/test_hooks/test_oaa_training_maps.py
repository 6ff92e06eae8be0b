"""The training maps reach OAAAccumulationHook under a real mmengine Runner.

The SynthVOC OAA+ config, shrunk to 8 tiny images, trains 2 epochs (4
steps). Spies on the head and on the hook check that every step's
accumulation gets the maps the head computed in that very step, and that
no checkpoint carries them.
"""
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from rca_mm.engine.hooks import OAAAccumulationHook
from rca_mm.fileio import OAAStore
from rca_mm.testing.tiny_runner import tiny_stage1_cfg, write_tiny_synthvoc

CONFIG = 'configs/synthvoc/oaa_r18-w16_8e_synthvoc-112x112.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    data_root = write_tiny_synthvoc(
        str(tmp_path_factory.mktemp('tiny') / 'synthvoc'), num_train=8)
    work_dir = str(tmp_path_factory.mktemp('work'))
    cfg = tiny_stage1_cfg(
        CONFIG,
        data_root,
        work_dir,
        max_epochs=2,
        batch_size=4,
        name='oaa_training_maps')
    cfg.custom_hooks = [dict(type='OAAAccumulationHook', start_epoch=0)]
    runner = Runner.from_cfg(cfg)
    head = runner.model.head
    hook = next(h for h in runner.hooks if isinstance(h, OAAAccumulationHook))
    made, read = [], []
    loss_and_predict, accumulate = head.loss_and_predict, hook.accumulate

    def spy_head(feats, data_samples):
        losses, maps = loss_and_predict(feats, data_samples)
        made.append((runner.iter, maps, data_samples))
        return losses, maps

    def spy_hook(cams, scores, data_samples, fill_missing):
        read.append((runner.iter, cams, scores, data_samples))
        return accumulate(cams, scores, data_samples, fill_missing)

    head.loss_and_predict = spy_head
    hook.accumulate = spy_hook
    runner.train()
    return runner, made, read, work_dir


def test_each_step_accumulates_the_maps_of_that_step(trained):
    runner, made, read, _ = trained
    assert [it for it, *_ in made] == [0, 1, 2, 3]
    assert [it for it, *_ in read] == [0, 1, 2, 3]
    for (it, maps, samples), (_, cams, scores, got) in zip(made, read):
        # The very tensors the head returned in this step, not a copy or
        # an earlier step's.
        assert cams is maps['cams'] and scores is maps['scores'], it
        assert got is samples, it
        assert cams.shape[:2] == (4, runner.model.num_classes), it
        assert not cams.requires_grad
    # Every image ended in the store.
    store = OAAStore(osp.join(runner.work_dir, 'oaa_store'))
    assert len(store.names()) == 8
    # Taken by the hook: nothing is left in the runner's MessageHub.
    assert runner.message_hub.get_info('train_cams') is None


def test_checkpoints_do_not_carry_the_maps(trained):
    _, _, _, work_dir = trained
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    hub = ckpt['message_hub']
    assert 'train_cams' not in hub['runtime_info']
    assert not hub['resumed_keys'].get('train_cams', False)
    assert 'epoch' in hub['runtime_info']  # a real message hub state
