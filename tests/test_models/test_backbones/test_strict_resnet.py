"""The SynthNet hand-over: the pretraining config's backbone is the one of
every SynthVOC stage, and its checkpoint loads strictly into each of them
and changes what they compute."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rca_mm.registry import MODELS
from ...conftest import REPO

PRETRAIN = 'configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py'
STAGE2 = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
STAGE1 = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(f'{REPO}/configs/synthvoc/*_r18-w16_8e_*.py'))
# Keys that say how a backbone starts or how its BN trains, not its shape.
NOT_SHAPE = ('type', 'init_cfg', 'norm_cfg', 'norm_eval')


def load(rel: str) -> Config:
    return Config.fromfile(osp.join(REPO, rel))


def shape(backbone: dict) -> dict:
    return {k: v for k, v in backbone.items() if k not in NOT_SHAPE}


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """A checkpoint of the (randomly initialised) pretraining model, in
    the layout tools/train.py + publish_model.py --no-sha write."""
    init_default_scope('rca_mm')
    torch.manual_seed(0)
    model = MODELS.build(load(PRETRAIN).model)
    model.init_weights()
    with torch.no_grad():  # visibly not a fresh initialisation
        for p in model.backbone.parameters():
            p.add_(0.05)
    path = str(tmp_path_factory.mktemp('pre') / 'synthnet.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path, {
        k[len('backbone.'):]: v
        for k, v in model.state_dict().items() if k.startswith('backbone.')
    }


def test_every_synthvoc_stage_has_the_pretrained_backbone():
    assert len(STAGE1) == 8
    ref = shape(load(PRETRAIN).model.backbone)
    assert ref['depth'] == 18 and ref['base_channels'] == 16
    weights = set()
    for rel in STAGE1 + [STAGE2]:
        backbone = load(rel).model.backbone
        assert backbone.type == 'StrictResNet', rel
        assert shape(backbone) == ref, rel
        assert backbone.init_cfg.type == 'Pretrained'
        assert backbone.init_cfg.prefix == 'backbone.'
        weights.add(backbone.init_cfg.checkpoint)
    assert weights == {'data/pretrained/resnet18-w16-d8_synthnet.pth'}


@pytest.mark.parametrize('rel', [STAGE1[0], STAGE2])
def test_checkpoint_loads_strictly_and_changes_the_output(rel, pretrained):
    init_default_scope('rca_mm')
    path, state = pretrained
    cfg = load(rel)
    cfg.model.backbone.init_cfg.checkpoint = path
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    own = model.backbone.state_dict()
    assert set(own) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(own[k], v, rtol=0, atol=0)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(1)
    scratch = MODELS.build(cfg.model)
    scratch.init_weights()
    x = torch.randn(1, 3, 64, 64)
    model.eval(), scratch.eval()
    with torch.no_grad():
        a, b = model.backbone(x)[-1], scratch.backbone(x)[-1]
    assert a.shape == b.shape == (1, 128, 8, 8)
    assert (a - b).abs().max() > 1e-2


def test_a_missing_or_mismatched_file_is_a_clear_error(tmp_path, pretrained):
    init_default_scope('rca_mm')
    cfg = load(STAGE1[0])
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'none.pth')
    with pytest.raises(FileNotFoundError) as err:
        MODELS.build(cfg.model).init_weights()
    assert str(tmp_path / 'none.pth') in str(err.value)
    assert 'tools/run_synthvoc.sh' in str(err.value)
    assert PRETRAIN in str(err.value)
    # A file of another width does not load.
    _, state = pretrained
    wide = {
        f'backbone.{k}': torch.cat([v, v]) if v.dim() else v
        for k, v in state.items()
    }
    torch.save(dict(state_dict=wide), str(tmp_path / 'wide.pth'))
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'wide.pth')
    with pytest.raises(ValueError, match='shape mismatch'):
        MODELS.build(cfg.model).init_weights()
