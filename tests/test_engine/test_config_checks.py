"""The training batch against the number of processes: the config's total
(``auto_scale_lr.base_batch_size``) is kept, or the learning rate scaled
(``--auto-scale-lr``), or the run is refused naming the keys to set."""
import glob
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from rca_mm.engine.config_checks import resolve_train_batch_size, world_size_of
from rca_mm.engine.runner_builder import load_config
from ..conftest import REPO


def recipe(batch_size=2, base=8, **scale):
    auto_scale_lr = dict(enable=False, base_batch_size=base, **scale)
    return Config(
        dict(
            train_dataloader=dict(batch_size=batch_size, num_workers=0),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            auto_scale_lr=auto_scale_lr))


@pytest.mark.parametrize('world_size,expected', [(1, 8), (2, 4), (4, 2)])
def test_the_total_batch_is_kept_on_1_2_and_4_processes(world_size, expected):
    cfg = recipe(batch_size=2, base=8)  # written for 4 processes x 2
    message = resolve_train_batch_size(cfg, world_size)
    assert cfg.train_dataloader.batch_size == expected
    assert cfg.train_dataloader.batch_size * world_size == 8
    assert cfg.auto_scale_lr.enable is False  # the config's lr
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    if world_size == 4:
        assert 'the total batch 8 of the config' in message
    else:
        assert f'2 -> {expected} per process on {world_size}' in message


@pytest.mark.parametrize('world_size', [3, 4])
def test_a_total_that_does_not_divide_is_refused_naming_the_keys(world_size):
    cfg = recipe(batch_size=10, base=10)  # DeepLabV2: batch 10
    with pytest.raises(ValueError) as err:
        resolve_train_batch_size(cfg, world_size, config='deeplab.py')
    text = str(err.value)
    for name in ('auto_scale_lr.base_batch_size=10', 'deeplab.py',
                 'train_dataloader.batch_size=N', '--auto-scale-lr',
                 f'among {world_size} processes'):
        assert name in text
    assert cfg.train_dataloader.batch_size == 10  # untouched


@pytest.mark.parametrize('world_size,scale', [(1, 0.25), (2, 0.5), (4, 1.0)])
def test_auto_scale_lr_keeps_the_batch_and_scales_the_lr(world_size, scale):
    cfg = recipe(batch_size=2, base=8)
    message = resolve_train_batch_size(cfg, world_size, auto_scale_lr=True)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=8)
    assert f'scaled by {2 * world_size}/8' in message
    # What mmengine's Runner then does with it (Runner.train -> scale_lr).
    param = torch.nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=0.01))
    runner = SimpleNamespace(
        _train_dataloader=cfg.train_dataloader,
        world_size=world_size,
        param_schedulers=None,
        logger=MMLogger.get_current_instance())
    Runner.scale_lr(runner, wrapper, cfg.auto_scale_lr)
    assert wrapper.param_groups[0]['lr'] == pytest.approx(0.01 * scale)


def test_auto_scale_lr_needs_a_base_batch_size():
    cfg = Config(dict(train_dataloader=dict(batch_size=2)))
    with pytest.raises(ValueError, match='auto_scale_lr.base_batch_size'):
        resolve_train_batch_size(cfg, 2, auto_scale_lr=True, config='x.py')


def test_a_batch_size_given_on_the_command_line_is_kept():
    cfg = recipe(batch_size=4, base=8)
    message = resolve_train_batch_size(cfg, 4, batch_size_given=True)
    assert cfg.train_dataloader.batch_size == 4
    assert 'total batch of 16' in message
    assert 'auto_scale_lr.base_batch_size=8' in message
    assert cfg.auto_scale_lr.enable is False
    cfg = recipe(batch_size=4, base=8)
    message = resolve_train_batch_size(cfg, 2, batch_size_given=True)
    assert cfg.train_dataloader.batch_size == 4
    assert 'base_batch_size' not in message  # the recipe's total


def test_a_config_without_a_base_batch_size_keeps_its_batch():
    cfg = Config(dict(train_dataloader=dict(batch_size=3)))
    message = resolve_train_batch_size(cfg, 2)
    assert cfg.train_dataloader.batch_size == 3
    assert 'total batch of 6' in message
    assert 'no auto_scale_lr.base_batch_size' in message
    # No training loader (a test config): nothing to do.
    assert resolve_train_batch_size(Config(dict(train_dataloader=None)),
                                    2) == ''


def test_world_size_of_the_launchers(monkeypatch):
    assert world_size_of('none') == 1
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('SLURM_NTASKS', '8')
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '2')
    assert world_size_of('pytorch') == 4
    assert world_size_of('slurm') == 8
    assert world_size_of('mpi') == 2
    monkeypatch.setenv('WORLD_SIZE', 'x')
    with pytest.raises(ValueError, match='WORLD_SIZE'):
        world_size_of('pytorch')


CAM = 'configs/cam/cam_vgg16_voc.py'
DEEPLAB = 'configs/deeplabv2/deeplabv2_r101_voc.py'


def test_load_config_for_training_fits_the_batch(monkeypatch, tmp_path):
    monkeypatch.setenv('WORLD_SIZE', '2')
    work = str(tmp_path)
    # Written for 4 x 2: one process takes 8, two take 4 each.
    assert load_config(
        CAM, work_dir=work, training=True).train_dataloader.batch_size == 8
    assert load_config(
        CAM, work_dir=work, launcher='pytorch',
        training=True).train_dataloader.batch_size == 4
    # Not for training (tools/test.py): untouched.
    assert load_config(
        CAM, work_dir=work,
        launcher='pytorch').train_dataloader.batch_size == 2
    # --cfg-options train_dataloader.batch_size wins.
    cfg = load_config(
        CAM, {'train_dataloader.batch_size': 3},
        work,
        'pytorch',
        training=True)
    assert cfg.train_dataloader.batch_size == 3
    # --auto-scale-lr: the config's per-process batch, the lr scaled.
    cfg = load_config(
        CAM, None, work, 'pytorch', training=True, auto_scale_lr=True)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.enable is True
    # DeepLabV2's batch 10 on 4 processes: refused.
    monkeypatch.setenv('WORLD_SIZE', '4')
    with pytest.raises(ValueError, match='does not divide among 4'):
        load_config(DEEPLAB, None, work, 'pytorch', training=True)
    assert load_config(
        DEEPLAB, {
            'auto_scale_lr.base_batch_size': 12
        },
        work,
        'pytorch',
        training=True).train_dataloader.batch_size == 3


def test_the_decision_is_logged():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        resolve_train_batch_size(recipe(batch_size=2, base=8), 1)
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        'Batch size: train_dataloader.batch_size: 2 -> 8 per process on 1 '
        'process(es), keeping the total batch 8 of the config '
        '(auto_scale_lr.base_batch_size) at its learning rate; '
        '--auto-scale-lr keeps the per-process batch and scales the '
        'learning rate instead'
    ]
    assert records[0].levelno == logging.WARNING


# The total batch of each config's recipe (the papers' or SynthVOC's).
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def expected_total(path):
    name = osp.basename(path)
    if 'synthvoc' in path:  # one process of 16 (stage 1 and stage 2)
        return 16
    if 'synthnet' in name:
        return 64
    if 'smoke' in path:
        return 4
    if name.startswith('deeplabv2'):
        return 10  # deeplab-pytorch's batch
    if name in ('eps_vgg16_coco.py', 'rca_eps_vgg16_coco.py'):
        return 16  # EPS's COCO batch
    return 8  # the RCA paper's stage-1 batch


@pytest.mark.parametrize('path', CONFIGS)
def test_every_config_states_its_total_batch(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    total = expected_total(path)
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=total)
    batch = cfg.train_dataloader.batch_size
    # Written for 1 process (SynthVOC, DeepLabV2) or 4 (the papers'
    # stage-1 configs): its own batch is the recipe on that many.
    assert batch * (1 if total in (4, 10, 64) or 'synthvoc' in path else
                    4) == total
    for world_size in (1, 2, 4):
        if total % world_size:
            continue
        resolve_train_batch_size(cfg, world_size)
        assert cfg.train_dataloader.batch_size * world_size == total


@pytest.mark.parametrize('path', [
    'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py',
    'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py',
])
def test_synthvoc_configs_are_unchanged_on_one_process(path, tmp_path):
    before = Config.fromfile(osp.join(REPO, path))
    after = load_config(
        osp.join(REPO, path), work_dir=str(tmp_path), training=True)
    assert after.train_dataloader.batch_size == \
        before.train_dataloader.batch_size == 16
    assert after.auto_scale_lr.enable is False
    assert after.optim_wrapper == before.optim_wrapper
