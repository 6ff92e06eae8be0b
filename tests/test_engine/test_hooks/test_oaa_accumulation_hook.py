from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmseg.structures import SegDataSample

from rca_mm.engine.hooks import OAAAccumulationHook
from rca_mm.fileio import OAAStore
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
    pass


def _runner(tmp_path, epoch=0, max_epochs=3, it=0):
    return SimpleNamespace(
        model=FakeModel(),
        message_hub=MessageHub(name='oaa_accumulation_hook_test'),
        work_dir=str(tmp_path),
        epoch=epoch,
        max_epochs=max_epochs,
        iter=it)


def _publish(runner, cams, scores, samples):
    """What CAMClassifier.loss does in a training step."""
    runner.message_hub.update_info(
        'train_cams',
        dict(cams=cams, scores=scores, data_samples=samples),
        resumed=False)


def _step(hook, runner, cams, scores, samples):
    hook.before_train_iter(runner, batch_idx=runner.iter)
    _publish(runner, cams, scores, samples)
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
    hook.after_train_epoch(runner)
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
    hook.after_train_epoch(runner)
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
    hook.after_train_epoch(runner)
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
    hook.after_train_epoch(runner)
    assert 'a' not in OAAStore(str(tmp_path))  # epoch 0 < start_epoch
    runner.epoch = 1  # the last epoch: class 2 fails the gate but is new
    hook.before_train_epoch(runner)
    _step(hook, runner, cams, scores, [_sample('a', [0, 2])])
    hook.after_train_epoch(runner)
    assert OAAStore(str(tmp_path)).load('a').class_ids.tolist() == [0, 2]
    # Without fill_last_epoch, the gate holds in the last epoch too.
    hook = OAAAccumulationHook(
        store_dir=str(tmp_path / 'n'), fill_last_epoch=False)
    hook.before_train(runner)
    _step(hook, runner, cams, scores, [_sample('a', [0, 2])])
    hook.after_train_epoch(runner)
    assert OAAStore(str(tmp_path / 'n')).load('a').class_ids.tolist() == [0]


def test_interval_and_reset_on_start(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path), interval=2)
    runner = _runner(tmp_path)
    hook.before_train(runner)
    cams = torch.rand(1, 1, 2, 2)
    _step(hook, runner, cams, torch.ones(1, 1), [_sample('i0', [0], 1)])
    _step(hook, runner, cams, torch.ones(1, 1), [_sample('i1', [0], 1)])
    hook.after_train_epoch(runner)
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
    hook.after_train_epoch(runner)
    assert 'r' in OAAStore(str(tmp_path))
    hook.before_train_iter(runner, batch_idx=runner.iter)
    with pytest.raises(
            RuntimeError,
            match=r"FakeModel\) published no training maps.*"
            "'train_cams'.*CAMClassifier"):
        hook.after_train_iter(runner, batch_idx=runner.iter)


def test_only_the_maps_of_the_step_that_ran_are_read(tmp_path):
    hook = OAAAccumulationHook(store_dir=str(tmp_path), interval=2)
    runner = _runner(tmp_path)
    hook.before_train(runner)
    # Step 0 is not accumulated (interval 2): its maps are dropped unread.
    _step(hook, runner, torch.ones(1, 1, 2, 2), torch.ones(1, 1),
          [_sample('a', [0], 1)])
    assert runner.message_hub.get_info('train_cams') is None
    assert len(hook.memory) == 0
    # Maps published outside a step (an earlier step, a manual forward)
    # are dropped before the next step: a step that publishes nothing is
    # an error, not a second read of them.
    _publish(runner, torch.ones(1, 1, 2, 2), torch.ones(1, 1),
             [_sample('b', [0], 1)])
    hook.before_train_iter(runner, batch_idx=runner.iter)
    with pytest.raises(RuntimeError, match='published no training maps'):
        hook.after_train_iter(runner, batch_idx=runner.iter)
    assert len(hook.memory) == 0


def _old_accumulate(hook, store, cams, scores, samples, fill_missing):
    """The earlier hook's step, as reference: every image's maps read,
    merged and written to the store at once."""
    for cam, score, sample in zip(cams.float(), scores.float(), samples):
        tags = torch.nonzero(sample.gt_img_labels > 0.5).flatten()
        if tags.numel() == 0:
            continue
        top_k = set(score.topk(tags.numel()).indices.tolist())
        name = sample.metainfo['img_name']
        stored = set()
        if fill_missing and name in store:
            stored = set(store.load(name).class_ids.tolist())
        keep = [
            c for c in tags.tolist()
            if c in top_k or (fill_missing and c not in stored)
        ]
        if not keep:
            continue
        maps = hook._to_image_frame(cam[keep], sample.metainfo).clamp(min=0)
        maps = maps / (maps.flatten(1).amax(1)[:, None, None] + 1e-8)
        store.update(name, keep, maps.numpy(),
                     sample.metainfo.get('ori_shape'))


def _schedule(seed=0, epochs=3, images=8, batch=2, num_classes=3):
    """Per epoch, the batches (cams, scores, samples) of a shuffled pass."""
    gen = torch.Generator().manual_seed(seed)
    tags = {
        f'im{i}': torch.randperm(num_classes,
                                 generator=gen)[:1 + i % 2].tolist()
        for i in range(images)
    }
    schedule = []
    for _ in range(epochs):
        order = torch.randperm(images, generator=gen).tolist()
        batches = []
        for k in range(0, images, batch):
            names = [f'im{i}' for i in order[k:k + batch]]
            flips = torch.rand(len(names), generator=gen) < .5
            batches.append(
                (torch.randn(len(names), num_classes, 4, 6, generator=gen),
                 torch.randn(len(names), num_classes, generator=gen), [
                     _sample(
                         n,
                         tags[n],
                         num_classes,
                         flip=bool(f),
                         ori_shape=(16, 24),
                         img_shape=(16, 24)) for n, f in zip(names, flips)
                 ]))
        schedule.append(batches)
    return schedule


def _reference(tmp_path, schedule, start_epoch=1, fill=True):
    hook = OAAAccumulationHook(store_dir=str(tmp_path))
    store = OAAStore(str(tmp_path))
    for epoch, batches in enumerate(schedule):
        if epoch >= start_epoch:
            for cams, scores, samples in batches:
                _old_accumulate(hook, store, cams, scores, samples, fill
                                and epoch + 1 == len(schedule))
    return str(tmp_path)


def _train(hooks,
           tmp_path,
           schedule,
           epochs=None,
           first_epoch=0,
           it=0,
           stop_after=None):
    """Run ``schedule`` through ``hooks`` (one per "process", batches dealt
    round-robin) as the runner calls them; ``stop_after`` iterations of the
    last epoch run, then the function returns without ending the epoch."""
    runners = [
        _runner(tmp_path, epoch=first_epoch, max_epochs=len(schedule), it=it)
        for _ in hooks
    ]
    for hook, runner in zip(hooks, runners):
        runner.max_iters = 100
        hook.before_train(runner)
    for epoch in range(first_epoch, epochs or len(schedule)):
        for hook, runner in zip(hooks, runners):
            runner.epoch = epoch
            hook.before_train_epoch(runner)
        for k, (cams, scores, samples) in enumerate(schedule[epoch]):
            if stop_after is not None and epoch + 1 == (
                    epochs or len(schedule)) and k == stop_after:
                return runners
            rank = k % len(hooks)
            _step(hooks[rank], runners[rank], cams, scores, samples)
        for hook, runner in zip(hooks, runners):
            hook.after_train_epoch(runner)
    return runners


def _arrays(store_dir):
    out = {}
    for name in OAAStore(store_dir).names():
        with np.load(OAAStore(store_dir).path(name)) as x:
            out[name] = {k: x[k].copy() for k in x.files}
    return out


def assert_same_store(a_dir, b_dir):
    a, b = _arrays(a_dir), _arrays(b_dir)
    assert a and sorted(a) == sorted(b)
    for name in a:
        for key in ('class_ids', 'maps', 'ori_shape'):
            assert a[name][key].dtype == b[name][key].dtype
            np.testing.assert_array_equal(
                a[name][key], b[name][key], err_msg=f'{name}:{key}')


@pytest.mark.parametrize('variant', ['memory', 'every_step', 'two_ranks'])
def test_same_files_as_writing_every_step(tmp_path, variant):
    schedule = _schedule()
    reference = _reference(tmp_path / 'ref', schedule)
    # The last epoch's ungated maps matter here (else the test is weaker).
    no_fill = _reference(tmp_path / 'no_fill', schedule, fill=False)
    assert sum(len(v['class_ids']) for v in _arrays(reference).values()) > \
        sum(len(v['class_ids']) for v in _arrays(no_fill).values())
    store_dir = str(tmp_path / variant)
    kwargs = dict(store_dir=store_dir, start_epoch=1)
    if variant == 'memory':
        hooks = [OAAAccumulationHook(**kwargs)]
    elif variant == 'every_step':
        hooks = [OAAAccumulationHook(max_memory_mb=0, **kwargs)]
    else:  # two processes, one store: merged by maximum when written
        hooks = [OAAAccumulationHook(**kwargs) for _ in range(2)]
    _train(hooks, tmp_path, schedule)
    assert_same_store(reference, store_dir)


def test_no_file_is_written_in_a_step(tmp_path, monkeypatch):
    hook = OAAAccumulationHook(store_dir=str(tmp_path))
    runner = _runner(tmp_path)
    hook.before_train(runner)

    def no_io(*args, **kwargs):
        raise AssertionError('the store was written in a training step')

    monkeypatch.setattr(OAAStore, 'update', no_io)
    monkeypatch.setattr(OAAStore, 'load', no_io)
    for _ in range(3):
        _step(
            hook, runner, torch.rand(2, 2, 4, 4),
            torch.tensor([[2., 1.], [1., 2.]]),
            [_sample('a', [0], 2), _sample('b', [1], 2)])
    assert hook.memory.names() == ['a', 'b']
    monkeypatch.undo()
    assert OAAStore(str(tmp_path)).names() == []
    hook.before_save_checkpoint(runner, checkpoint={})
    assert OAAStore(str(tmp_path)).names() == ['a', 'b']
    assert len(hook.memory) == 0


def test_memory_bound_and_iteration_checkpoints_write(tmp_path):
    from mmengine.hooks import CheckpointHook
    cams, scores = torch.rand(1, 1, 4, 4), torch.ones(1, 1)
    # 1e-4 MiB (105 bytes) is less than one 4x4 map with its header.
    hook = OAAAccumulationHook(
        store_dir=str(tmp_path / 'b'), max_memory_mb=1e-4)
    runner = _runner(tmp_path)
    hook.before_train(runner)
    _step(hook, runner, cams, scores, [_sample('x', [0], 1)])
    assert OAAStore(str(tmp_path / 'b')).names() == ['x']
    # Iteration-based checkpoints every 2 iterations: written before each.
    hook = OAAAccumulationHook(store_dir=str(tmp_path / 'c'))
    runner = _runner(tmp_path)
    runner.hooks = [CheckpointHook(interval=2, by_epoch=False)]
    runner.max_iters = 10
    hook.before_train(runner)
    _step(hook, runner, cams, scores, [_sample('i0', [0], 1)])
    assert OAAStore(str(tmp_path / 'c')).names() == []
    _step(hook, runner, cams, scores, [_sample('i1', [0], 1)])
    assert OAAStore(str(tmp_path / 'c')).names() == ['i0', 'i1']
    # Epoch-based checkpoints: nothing in the step (the epoch end writes).
    hook = OAAAccumulationHook(store_dir=str(tmp_path / 'd'))
    runner.hooks = [CheckpointHook(interval=1, by_epoch=True)]
    runner.iter = 0
    hook.before_train(runner)
    _step(hook, runner, cams, scores, [_sample('i0', [0], 1)])
    _step(hook, runner, cams, scores, [_sample('i1', [0], 1)])
    assert OAAStore(str(tmp_path / 'd')).names() == []
    with pytest.raises(ValueError, match='max_memory_mb'):
        OAAAccumulationHook(max_memory_mb=-1)


@pytest.mark.parametrize('write_after_checkpoint', [False, True])
def test_kill_and_resume_equal_an_uninterrupted_run(tmp_path,
                                                    write_after_checkpoint):
    """Checkpoint after epoch 2 of 3, killed (the memory lost) in epoch 3,
    resumed from the checkpoint: the files equal the uninterrupted run's."""
    schedule = _schedule(seed=1)
    kwargs = dict(start_epoch=0)
    a_dir, b_dir = str(tmp_path / 'a'), str(tmp_path / 'b')
    _train([OAAAccumulationHook(store_dir=a_dir, **kwargs)], tmp_path,
           schedule)
    # Run B: epochs 1-2 end with their writes (the checkpoints), then 3 of
    # the 4 iterations of epoch 3; with `write_after_checkpoint` the memory
    # bound writes after every step, so the store is ahead of the
    # checkpoint when the run dies.
    killed = OAAAccumulationHook(
        store_dir=b_dir,
        max_memory_mb=0 if write_after_checkpoint else 1024,
        **kwargs)
    _train([killed], tmp_path, schedule, stop_after=3)
    assert (len(killed.memory) == 0) == write_after_checkpoint
    del killed  # SIGKILL: the maps in memory are lost
    iters_done = 2 * len(schedule[0])  # the checkpoint's iteration
    resumed = OAAAccumulationHook(store_dir=b_dir, **kwargs)
    _train([resumed], tmp_path, schedule, first_epoch=2, it=iters_done)
    assert_same_store(a_dir, b_dir)


def test_export_takes_the_store_beside_the_checkpoint(tmp_path):
    work_dir = tmp_path / 'train'
    OAAStore(str(work_dir / 'oaa_store')).update('a', [0], np.zeros((1, 1, 1)))
    model = FakeModel()
    model.oaa_store = None
    runner = SimpleNamespace(
        model=model,
        work_dir=str(tmp_path / 'test'),
        _load_from=str(work_dir / 'epoch_2.pth'))
    hook = OAAAccumulationHook()
    hook.before_test(runner)
    assert model.oaa_store == str(work_dir / 'oaa_store')
    # Given on the command line: kept as given.
    model.oaa_store = 'given/oaa_store'
    hook.before_test(runner)
    assert model.oaa_store == 'given/oaa_store'
    # The hook's store_dir, when the config sets it.
    model.oaa_store = None
    OAAAccumulationHook(store_dir=str(work_dir / 'oaa_store')).before_test(
        SimpleNamespace(model=model, work_dir='x', _load_from=None))
    assert model.oaa_store == str(work_dir / 'oaa_store')


def test_export_without_a_store_is_an_error_naming_the_option(tmp_path):
    model = FakeModel()
    model.oaa_store = None
    ckpt = tmp_path / 'published' / 'oaa.pth'
    runner = SimpleNamespace(
        model=model, work_dir=str(tmp_path / 'test'), _load_from=str(ckpt))
    expected = str(tmp_path / 'published' / 'oaa_store')
    with pytest.raises(FileNotFoundError) as err:
        OAAAccumulationHook().before_test(runner)
    assert expected in str(err.value)
    assert '--cfg-options model.test_cfg.oaa_store=' in str(err.value)
    assert model.oaa_store is None  # never the network's CAMs silently
    # A model that reads no store (no `oaa_store`) is left alone.
    OAAAccumulationHook().before_test(
        SimpleNamespace(model=nn.Identity(), work_dir='x', _load_from=None))
