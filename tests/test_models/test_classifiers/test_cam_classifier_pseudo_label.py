"""CAMClassifier's pseudo labels: ``model.test_cfg.pseudo_label`` makes
``pred_sem_seg`` in ``predict``, the recipe applied to the same inputs as
calling it by hand."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.evaluation.functional import (crf_refine_cams, saliency_recipe,
                                          threshold_recipe)
from rca_mm.registry import MODELS


@MODELS.register_module(force=True)
class _ChannelBackbone(nn.Module):
    """Returns the input as the only feature map (known CAMs)."""

    def forward(self, x):
        return (x, )


def _model(**test_cfg):
    init_default_scope('rca_mm')
    model = MODELS.build(
        dict(
            type='CAMClassifier',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(type='_ChannelBackbone'),
            head=dict(type='CAMHead', in_channels=3, num_classes=3),
            test_cfg=test_cfg))
    model.head.classifier.weight.data.copy_(torch.eye(3)[:, :, None, None])
    return model.eval()


def _sample(tags, hw, img_path='missing.jpg', saliency=None):
    sample = SegDataSample(
        metainfo=dict(img_shape=hw, ori_shape=hw, img_path=img_path))
    sample.gt_img_labels = torch.tensor(tags, dtype=torch.float32)
    if saliency is not None:
        sample.gt_saliency = PixelData(data=torch.from_numpy(saliency)[None])
    return sample


def _image(tmp_path, name, seed, hw=(12, 16)):
    rgb = np.random.default_rng(seed).integers(0, 256, hw + (3, ), np.uint8)
    path = str(tmp_path / f'{name}.png')
    cv2.imwrite(path, rgb[..., ::-1])
    return path, rgb


def test_threshold_recipe_as_pred_sem_seg():
    model = _model(pseudo_label=dict(type='ThresholdRecipe', bg_threshold=.3))
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(0))
    out = model.predict(x * 255, [_sample([1, 0, 1], (12, 16))])[0]
    cams = out.pred_cams.data.detach().numpy()
    expected = threshold_recipe(
        cams[[0, 2]], np.array([1, 3]), bg_threshold=.3)
    assert out.pred_sem_seg.data.shape == (1, 12, 16)
    np.testing.assert_array_equal(out.pred_sem_seg.data[0].detach().numpy(),
                                  expected)
    assert set(np.unique(expected)) == {0, 1, 3}
    # Without the setting: CAMs only, as before.
    plain = _model().predict(x * 255, [_sample([1, 0, 1], (12, 16))])[0]
    assert 'pred_sem_seg' not in plain
    torch.testing.assert_close(plain.pred_cams.data, out.pred_cams.data)


@pytest.mark.parametrize('workers', [0, 2])
def test_saliency_recipe_with_crf_equals_the_function(tmp_path, workers):
    """The image read from img_path, the CRF run in the workers (also for a
    batch of two sizes, predicted image by image): the same labels as the
    recipe's steps called by hand."""
    model = _model(
        pseudo_label=dict(
            type='SaliencyRecipe', crf=True, crf_cfg=dict(alpha=4)),
        crf_workers=workers)
    rng = np.random.default_rng(1)
    samples, images, saliencies = [], [], []
    for i, hw in enumerate([(12, 16), (10, 14)]):
        path, rgb = _image(tmp_path, f'img{i}', seed=i, hw=hw)
        saliency = rng.random(hw).astype(np.float32)
        samples.append(_sample([1, 1, 0], hw, path, saliency))
        images.append(rgb)
        saliencies.append(saliency)
    inputs = [torch.from_numpy(rgb).permute(2, 0, 1).float() for rgb in images]
    outs = model.test_step(dict(inputs=inputs, data_samples=samples))
    for out, rgb, saliency in zip(outs, images, saliencies):
        cams = out.pred_cams.data.detach().numpy()[[0, 1]]
        refined = crf_refine_cams(rgb, cams, alpha=4)
        expected = saliency_recipe(refined, np.array([1, 2]), saliency)
        np.testing.assert_array_equal(
            out.pred_sem_seg.data[0].detach().numpy(), expected)
    assert model.crf_pool.started == (workers > 1)


def test_failed_images_carry_the_reason_and_no_label(tmp_path):
    """An image the recipe cannot label does not stop the batch."""
    model = _model(pseudo_label=dict(type='SaliencyRecipe'))
    x = torch.rand(2, 3, 8, 8) * 255
    good = _sample([1, 0, 0], (8, 8), saliency=np.zeros((8, 8), np.float32))
    bad = _sample([1, 0, 0], (8, 8))  # no gt_saliency
    out = model.predict(x, [good, bad])
    assert 'pred_sem_seg' in out[0] and 'pseudo_label_error' not in out[0]
    assert 'pred_sem_seg' not in out[1]
    assert 'gt_saliency' in out[1].pseudo_label_error
    # An unreadable image, for a recipe with a CRF.
    crf = _model(pseudo_label=dict(type='ThresholdRecipe', crf=True))
    out = crf.predict(x[:1], [_sample([1, 0, 0], (8, 8), 'nowhere.jpg')])[0]
    assert 'pred_sem_seg' not in out
    assert out.pseudo_label_error.startswith(('OSError', 'FileNotFound'))
    # An image of another size than its CAMs.
    path, _ = _image(tmp_path, 'other', seed=0, hw=(6, 6))
    out = crf.predict(x[:1], [_sample([1, 0, 0], (8, 8), path)])[0]
    assert 'ValueError' in out.pseudo_label_error


def test_val_step_makes_no_pseudo_labels():
    model = _model(pseudo_label=dict(type='ThresholdRecipe'))
    data = dict(
        inputs=[torch.rand(3, 8, 8) * 255],
        data_samples=[_sample([1, 0, 0], (8, 8))])
    assert 'pred_sem_seg' not in model.val_step(data)[0]
    assert 'pred_sem_seg' in model.test_step(data)[0]
    assert model.pseudo_label is not None


def test_oaa_store_cams_get_pseudo_labels(tmp_path):
    from rca_mm.fileio import OAAStore
    store = OAAStore(str(tmp_path / 'oaa'))
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, :2] = 0.5  # top half of class 2
    store.update('img1', [1], maps, ori_shape=(8, 8))
    model = _model(
        oaa_store=str(tmp_path / 'oaa'),
        pseudo_label=dict(type='ThresholdRecipe'))
    sample = _sample([0, 1, 0], (8, 8))
    sample.set_metainfo(dict(img_name='img1'))
    out = model.predict(torch.rand(1, 3, 8, 8), [sample])[0]
    expected = threshold_recipe(out.pred_cams.data.detach().numpy()[[1]],
                                np.array([2]))
    np.testing.assert_array_equal(out.pred_sem_seg.data[0].detach().numpy(),
                                  expected)
    assert (expected[:3] == 2).all() and (expected[5:] == 0).all()


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match='model.test_cfg.crf_workers'):
        _model(crf_workers=-1)
    with pytest.raises(KeyError, match='NoSuchRecipe'):
        _model(pseudo_label=dict(type='NoSuchRecipe'))
