"""Every config under configs/ parses, uses rca_mm's scope and builds its
model and evaluator."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rca_mm.registry import METRICS, MODELS
from ..conftest import REPO

CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def test_there_are_configs():
    assert CONFIGS


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'rca_mm'
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key):
            METRICS.build(cfg[key])


def test_base_datasets_redirect_with_cfg_options():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/voc12_aug_seg.py'))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': '/x',
        'val_dataloader.dataset.data_root': '/y'
    })
    assert cfg.train_dataloader.dataset.data_root == '/x'
    assert cfg.val_dataloader.dataset.data_root == '/y'
