from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmseg.structures import SegDataSample

from rca_mm.engine.hooks import OAAAccumulationHook
from rca_mm.structures import OAAStore
from rca_mm.registry import HOOKS


def _sample(name,
            tags,
            num_classes=3,
            flip=False,
            direction='horizontal',
            **meta):
    sample = SegDataSample(
        metainfo=dict(
            img_name=name,
            ori_shape=meta.pop('ori_shape', (16, 16)),
            img_shape=meta.pop('img_shape', (16, 16)),
            flip=flip,
            flip_direction=direction if flip else None,
            **meta))
    labels = torch.zeros(num_classes)
    labels[list(tags)] = 1.
    sample.gt_img_labels = labels
    return sample


class FakeModel(nn.Module):
    last_train_cams = None


def _runner(tmp_path, epoch=0, max_epochs=3, it=0):
    return SimpleNamespace(
        model=FakeModel(),
        work_dir=str(tmp_path),
        epoch=epoch,
        max_epochs=max_epochs,
        iter=it)


def _step(hook, runner, cams, scores, samples):
    runner.model.last_train_cams = dict(
        cams=cams, scores=scores, data_samples=samples)
    hook.after_train_iter(runner, batch_idx=runner.iter)
    runner.iter += 1


def _norm(x):
    x = x.clamp(min=0)
    return (x / (x.max() + 1e-8)).numpy()


def test_gate_normalise_and_default_store_dir(tmp_path):
    hook = HOOKS.build(dict(type='OAAAccumulationHook'))
    runner = _runner(tmp_path)
    hook.before_train(runner)
    cams = torch.randn(2, 3, 4, 4)
    # Image a: tags {0, 2}, top-2 scores are classes 0 and 1 -> only class
    # 0 passes the gate. Image b: tag {1}, top-1 is class 1.
    scores = torch.tensor([[3., 2., 1.], [0., 5., 1.]])
    _step(hook, runner, cams, scores,
          [_sample('a', [0, 2]), _sample('b', [1])])
    store = OAAStore(str(tmp_path / 'oaa_store'))
    entry = store.load('a')
    assert entry.class_ids.tolist() == [0]
    np.testing.assert_allclose(entry.maps[0], _norm(cams[0, 0]), atol=1e-3)
    assert entry.maps.max() == pytest.approx(1., abs=1e-3)
    assert entry.ori_shape == (16, 16)
    assert store.load('b').class_ids.tolist() == [1]


def test_max_accumulation_over_steps(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path / 's'))
    runner = _runner(tmp_path)
    hook.before_train(runner)
    first = torch.tensor([[[4., 0.], [2., -1.]]])
    second = torch.tensor([[[1., 3.], [0., 2.]]])
    for cam in (first, second):
        _step(hook, runner, cam[None], torch.ones(1, 1),
              [_sample('x', [0], 1)])
    expected = np.maximum(_norm(first[0]), _norm(second[0]))
    np.testing.assert_allclose(
        OAAStore(str(tmp_path / 's')).load('x').maps[0], expected, atol=1e-3)


def test_unflip_and_padding(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path))
    runner = _runner(tmp_path)
    hook.before_train(runner)
    cam = torch.arange(16.).view(1, 1, 4, 4)
    samples = [
        _sample('h', [0], 1, flip=True),
        _sample('v', [0], 1, flip=True, direction='vertical'),
        # 16x8 image padded on the right to the 16x16 batch input: the
        # cam's right half is padding.
        _sample(
            'p', [0],
            1,
            img_shape=(16, 8),
            ori_shape=(16, 8),
            padding_size=(0, 8, 0, 0)),
    ]
    for s in samples:
        _step(hook, runner, cam, torch.ones(1, 1), [s])
    store = OAAStore(str(tmp_path))
    norm = _norm(cam[0, 0])
    np.testing.assert_allclose(
        store.load('h').maps[0], norm[:, ::-1], atol=1e-3)
    np.testing.assert_allclose(store.load('v').maps[0], norm[::-1], atol=1e-3)
    np.testing.assert_allclose(
        store.load('p').maps[0], norm[:, :2] / norm[:, :2].max(), atol=1e-3)


def test_fill_last_epoch_and_start_epoch(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path), start_epoch=1)
    runner = _runner(tmp_path, epoch=0, max_epochs=2)
    hook.before_train(runner)
    cams = torch.rand(1, 3, 2, 2)
    scores = torch.tensor([[3., 2., 1.]])
    _step(hook, runner, cams, scores, [_sample('a', [0, 2])])
    assert 'a' not in OAAStore(str(tmp_path))  # epoch 0 < start_epoch
    runner.epoch = 1  # the last epoch: class 2 fails the gate but is new
    _step(hook, runner, cams, scores, [_sample('a', [0, 2])])
    assert OAAStore(str(tmp_path)).load('a').class_ids.tolist() == [0, 2]
    # Without fill_last_epoch, the gate holds in the last epoch too.
    hook = OAAAccumulationHook(
        store_dir=str(tmp_path / 'n'), fill_last_epoch=False)
    hook.before_train(runner)
    _step(hook, runner, cams, scores, [_sample('a', [0, 2])])
    assert OAAStore(str(tmp_path / 'n')).load('a').class_ids.tolist() == [0]


def test_interval_and_reset_on_start(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path), interval=2)
    runner = _runner(tmp_path)
    hook.before_train(runner)
    cams = torch.rand(1, 1, 2, 2)
    _step(hook, runner, cams, torch.ones(1, 1), [_sample('i0', [0], 1)])
    _step(hook, runner, cams, torch.ones(1, 1), [_sample('i1', [0], 1)])
    assert OAAStore(str(tmp_path)).names() == ['i1']  # (iter + 1) % 2 == 0
    # A resumed run keeps the store, a fresh one empties it.
    hook.before_train(_runner(tmp_path, it=10))
    assert OAAStore(str(tmp_path)).names() == ['i1']
    hook.before_train(_runner(tmp_path, it=0))
    assert OAAStore(str(tmp_path)).names() == []


def test_crop_and_missing_record_are_clear(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path))
    runner = _runner(tmp_path)
    hook.before_train(runner)
    cropped = _sample(
        'c', [0],
        1,
        ori_shape=(40, 40),
        img_shape=(16, 16),
        scale_factor=(0.5, 0.5))
    with pytest.raises(RuntimeError, match='cropped'):
        _step(hook, runner, torch.rand(1, 1, 2, 2), torch.ones(1, 1),
              [cropped])
    resized = _sample(
        'r', [0],
        1,
        ori_shape=(40, 40),
        img_shape=(16, 16),
        scale_factor=(0.4, 0.4))
    _step(hook, runner, torch.rand(1, 1, 2, 2), torch.ones(1, 1), [resized])
    assert 'r' in OAAStore(str(tmp_path))
    runner.model.last_train_cams = None
    with pytest.raises(RuntimeError, match='last_train_cams'):
        hook.after_train_iter(runner, batch_idx=0)
