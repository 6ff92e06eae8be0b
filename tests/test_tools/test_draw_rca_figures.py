"""tools/analysis_tools/draw_rca_figures.py on randomly initialised
SynthVOC classifiers (no training) and the tiny VOC-layout dataset."""
import importlib.util
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from PIL import Image

from rca_mm.registry import MODELS
from rca_mm.visualization import (WSSSLocalVisualizer, affinity_panels,
                                  rca_maps, select_prototypes)
from tests.conftest import REPO

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'draw_rca_figures.py')
RCA = osp.join(REPO, 'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py')
EPS = osp.join(REPO, 'configs/synthvoc/eps_r18-w16_8e_synthvoc-112x112.py')
NAMES = ['2007_000000', '2007_000001']
TITLE = 14  # the visualizer's default title band


def load_tool():
    spec = importlib.util.spec_from_file_location('draw_rca_figures', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def options(voc_root):
    return [
        f'test_dataloader.dataset.data_root={voc_root}',
        'model.backbone.init_cfg=None'
    ]


def random_checkpoint(config, path, prototypes=None):
    """A checkpoint of the config's model with its random initial weights
    (and, for RCA, the given prototypes)."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope('rca_mm')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if prototypes is not None:
        model.head.aggregation.set_prototypes(*prototypes)
    torch.save(dict(state_dict=model.state_dict()), path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ckpts')
    gen = torch.Generator().manual_seed(1)
    protos = torch.randn(10, 4, 128, generator=gen)
    valid = torch.ones(10, 4, dtype=torch.bool)
    valid[:, 3] = False  # the fourth prototype of every class is unset
    return (random_checkpoint(RCA, tmp / 'rca.pth', (protos, valid)),
            random_checkpoint(EPS, tmp / 'eps.pth'))


def image_tags(voc_root, name):
    gt = np.asarray(
        Image.open(osp.join(voc_root, 'SegmentationClassAug', name + '.png')))
    return [c for c in np.unique(gt) if 0 < c < 255]


def test_draws_both_figures(checkpoints, voc_root, tmp_path):
    rca, eps = checkpoints
    fig3, fig4 = tmp_path / 'fig3.png', tmp_path / 'fig4.png'
    load_tool().main([
        RCA, rca, '--images', *NAMES, '--fig3',
        str(fig3), '--fig4',
        str(fig4), '--baseline-config', EPS, '--baseline-checkpoint', eps,
        '--baseline-name', 'EPS', '--num-prototypes', '2', '--cfg-options',
        *options(voc_root)
    ])
    tags = [image_tags(voc_root, n) for n in NAMES]
    h, w = 64, 64
    # Fig. 3: a row per image: image, GT, then 2 valid prototypes per tag.
    drawn3 = mmcv.imread(str(fig3), channel_order='rgb')
    cols = 2 + 2 * max(len(t) for t in tags)
    assert drawn3.shape == (len(NAMES) * (TITLE + h), cols * w, 3)
    for r, name in enumerate(NAMES):
        image = mmcv.imread(
            osp.join(voc_root, 'JPEGImages', name + '.jpg'),
            channel_order='rgb')
        top = r * (TITLE + h) + TITLE
        np.testing.assert_array_equal(drawn3[top:top + h, :w], image)
        # Each heatmap is jet over the image: it differs from the image.
        for c in range(2, 2 + 2 * len(tags[r])):
            panel = drawn3[top:top + h, c * w:(c + 1) * w].astype(int)
            assert np.abs(panel - image).mean() > 10
        # Padding of a shorter row stays white.
        for c in range(2 + 2 * len(tags[r]), cols):
            assert (drawn3[top:top + h, c * w:(c + 1) * w] == 255).all()
    # Fig. 4: a row per (image, tag): image, GT, EPS CAM, P, O.
    drawn4 = mmcv.imread(str(fig4), channel_order='rgb')
    assert drawn4.shape == (sum(map(len, tags)) * (TITLE + h), 5 * w, 3)


def test_selects_the_strongest_valid_prototypes_of_each_tag():
    affinity = torch.zeros(3, 3, 2, 2)
    affinity[1, 0] = 0.1
    affinity[1, 1] = 0.5
    affinity[1, 2] = 0.9  # strongest, but not valid
    affinity[2, 0] = 0.2
    valid = torch.ones(3, 3, dtype=torch.bool)
    valid[1, 2] = False
    assert select_prototypes(affinity, valid, [1, 2], 2) == [(1, 1), (1, 0),
                                                             (2, 0), (2, 1)]
    # Of any class: the strongest valid ones overall.
    assert select_prototypes(affinity, valid, None, 3) == [(1, 1), (2, 0),
                                                           (1, 0)]


def test_fig4_needs_the_baseline(checkpoints, voc_root, tmp_path):
    rca, _ = checkpoints
    with pytest.raises(SystemExit):
        load_tool().main([
            RCA, rca, '--images', NAMES[0], '--fig4',
            str(tmp_path / 'f.png')
        ])


def test_unknown_image_is_named(checkpoints, voc_root, tmp_path):
    rca, _ = checkpoints
    with pytest.raises(KeyError, match='nope'):
        load_tool().main([
            RCA, rca, '--images', 'nope', '--fig3',
            str(tmp_path / 'f.png'), '--cfg-options', *options(voc_root)
        ])


def test_a_baseline_checkpoint_is_refused_as_rca(checkpoints, voc_root,
                                                 tmp_path):
    _, eps = checkpoints
    with pytest.raises(ValueError, match='RCAHead'):
        load_tool().main([
            EPS, eps, '--images', NAMES[0], '--fig3',
            str(tmp_path / 'f.png'), '--cfg-options', *options(voc_root)
        ])


def test_a_checkpoint_of_another_config_is_named(checkpoints, voc_root,
                                                 tmp_path):
    """The classifiers load through rca_mm.apis.init_model: weights that do
    not fit the config's model stop the tool with the file's name, and
    before any figure is written."""
    _, eps = checkpoints
    with pytest.raises(ValueError) as err:
        load_tool().main([
            RCA, eps, '--images', NAMES[0], '--fig3',
            str(tmp_path / 'f.png'), '--cfg-options', *options(voc_root)
        ])
    assert f"checkpoint '{eps}' does not fit the model" in str(err.value)
    assert not (tmp_path / 'f.png').exists()


def test_rca_maps_are_the_heads_p_o_and_affinity(checkpoints):
    rca, _ = checkpoints
    cfg = Config.fromfile(RCA)
    cfg.model.backbone.init_cfg = None
    init_default_scope('rca_mm')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, rca, map_location='cpu')
    model.eval()
    x = torch.randn(1, 3, 32, 40)
    maps = rca_maps(model, x)
    feats = model.head.features(model.extract_feat(x))
    torch.testing.assert_close(maps['p'], model.head.classify(feats))
    torch.testing.assert_close(maps['o'], model.head.predict_cams(feats))
    s = maps['affinity']
    assert s.shape == (1, 10, 4) + feats.shape[2:]
    # Eq. 7: a softmax over the valid prototypes of all classes.
    torch.testing.assert_close(s.sum(dim=(1, 2)), torch.ones(1, 4, 5))
    assert (s[:, :, 3] == 0).all() and maps['valid'][:, :3].all()


def test_affinity_panel_is_s_on_its_own_scale():
    vis = WSSSLocalVisualizer.get_instance('fig3_panels')
    vis.dataset_meta = dict(
        classes=('background', 'cat', 'dog'),
        palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    image = np.full((8, 8, 3), 100, np.uint8)
    affinity = torch.zeros(2, 2, 8, 8)
    affinity[1, 1, :4] = 1.0  # dog q1 owns the top half
    panels = affinity_panels(vis, image, affinity, [(1, 1), (0, 0)])
    assert [t for t, _ in panels] == ['image', 'dog q1: 1.00', 'cat q0: 0.00']
    drawn = panels[1][1].astype(float)
    # S = 1 at jet's red top, 0 at its blue bottom, half on the image.
    assert (drawn[:4, :, 0] > drawn[:4, :, 2] + 40).all()
    assert (drawn[4:, :, 2] > drawn[4:, :, 0] + 40).all()
    # A prototype with no affinity stays at jet's bottom everywhere.
    np.testing.assert_array_equal(panels[2][1], panels[1][1][7:8].repeat(8, 0))
