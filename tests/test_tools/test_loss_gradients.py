import importlib.util
import math
import os.path as osp
import re

import pytest
import torch
from mmengine.runner import Runner

from rca_mm.testing.tiny_runner import tiny_stage1_cfg, write_tiny_synthvoc
from tests.conftest import REPO, run_tool

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'loss_gradients.py')
CONFIG = osp.join(REPO, 'configs', 'synthvoc',
                  'rca_r18-w16_8e_synthvoc-112x112.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('loss_gradients', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_term_gradients_hand_computed():
    """(w.x)^2 has gradient 2 (w.x) x, 3 sum(w) has 3; a constant term
    gives zeros, keys that are not losses are skipped, and the total is the
    sum of the terms."""
    tool = load_tool()
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    v = torch.tensor([0.5], requires_grad=True)
    x = torch.tensor([3.0, 1.0])
    losses = dict(
        loss_sq=(w @ x)**2,
        loss_lin=3 * w.sum() + 0 * v.sum(),
        loss_const=torch.tensor(0.0),
        acc=w.sum() * 10)
    out = tool.term_gradients(losses, [w, v])
    assert set(out) == {'loss_sq', 'loss_lin', 'loss_const', 'total'}
    torch.testing.assert_close(out['loss_sq'][1], torch.tensor([6.0, 2.0,
                                                                0.0]))
    assert out['loss_sq'][0] == pytest.approx(1.0)
    torch.testing.assert_close(out['loss_lin'][1],
                               torch.tensor([3.0, 3.0, 0.0]))
    torch.testing.assert_close(out['loss_const'][1], torch.zeros(3))
    torch.testing.assert_close(out['total'][1], torch.tensor([9.0, 5.0, 0.]))
    assert out['total'][0] == pytest.approx(1.0 - 3.0)


def test_bank_separation_hand_computed():
    """Two classes on orthogonal axes, each entry duplicated: cosine 1
    within a class, 0 between; each entry's one positive has logit 1/tau
    and its two negatives 0, so Eq. 4 gives softplus(log 2 - 1/tau), at a
    chance level of log(1 + 2), whatever tau."""
    tool = load_tool()
    feats = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    for tau in (0.07, 0.5):
        stats = tool.bank_separation(feats, torch.tensor([0, 0, 1, 1]), tau)
        assert stats['cos_same'] == pytest.approx(1.0)
        assert stats['cos_other'] == pytest.approx(0.0)
        expected = math.log1p(math.exp(math.log(2) - 1 / tau))
        assert stats['nce'] == pytest.approx(expected, rel=1e-4)
        assert stats['nce_chance'] == pytest.approx(math.log(3))


def test_cli_on_a_trained_rca_checkpoint(tmp_path):
    """A checkpoint of the shipped RCA config (bank and prototypes included)
    loads strictly; every loss term of the head gets a row, the shares add
    up to 100 %, and the bank's Eq. 4 loss is taken at the model's own
    contrast temperature."""
    data = write_tiny_synthvoc(str(tmp_path / 'data'))
    cfg = tiny_stage1_cfg(CONFIG, data, str(tmp_path / 'work'), max_epochs=2)
    cfg.model.head.gate_threshold = 0.0  # every region reaches the bank
    Runner.from_cfg(cfg).train()
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    out = run_tool([
        'python', TOOL, cfg_file, tmp_path / 'work' / 'epoch_2.pth',
        '--batches', '2'
    ])
    rows = dict(
        re.findall(r'^\| (loss_\w+) \| [-\d.]+ \| [\d.e+-]+ \| ([\d.]+) %',
                   out, re.M))
    assert set(rows) == {'loss_cls_p', 'loss_rsc', 'loss_cls_o'}, out
    assert sum(float(v) for v in rows.values()) == pytest.approx(100, abs=0.2)
    assert '2 batches, backbone gradients' in out
    assert 'Eq. 4 loss (tau 0.07) per entry' in out, out
    out = run_tool([
        'python', TOOL, cfg_file, tmp_path / 'work' / 'epoch_2.pth',
        '--batches', '1', '--cfg-options',
        'model.head.contrast_loss.type=RegionContrastLoss',
        'model.head.contrast_loss.temperature=0.5'
    ])
    assert 'Eq. 4 loss (tau 0.5) per entry' in out, out
    # a published file (bank emptied) would give a contrast term of 0
    published = tmp_path / 'published.pth'
    run_tool([
        'python', 'tools/model_converters/publish_model.py', '--no-sha',
        tmp_path / 'work' / 'epoch_2.pth', published
    ])
    code, out = run_tool(['python', TOOL, cfg_file, published], check=False)
    assert code != 0 and f'{published}: its memory bank is empty' in out


def test_cli_bad_input(tmp_path):
    code, out = run_tool(['python', TOOL, CONFIG, tmp_path / 'x.pth'],
                         check=False)
    assert code != 0 and f"checkpoint '{tmp_path / 'x.pth'}' does not" in out
    code, out = run_tool(['python', TOOL, CONFIG, CONFIG, '--batches', '0'],
                         check=False)
    assert code != 0 and '--batches must be >= 1, got 0' in out


def test_cli_a_checkpoint_of_another_config_is_named(tmp_path):
    """The model loads through rca_mm.apis.init_model before any data is
    read: weights of another config's model stop the tool naming the
    file."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from rca_mm.registry import MODELS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'synthvoc',
                 'cam_r18-w16_8e_synthvoc-112x112.py'))
    cfg.model.backbone.init_cfg = None
    init_default_scope('rca_mm')
    ckpt = tmp_path / 'cam.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), ckpt)
    code, out = run_tool(['python', TOOL, CONFIG, ckpt], check=False)
    assert code != 0
    assert f"checkpoint '{ckpt}' does not fit the model CAMClassifier" in out
