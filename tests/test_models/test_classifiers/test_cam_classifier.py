import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.registry import MODELS
from ..test_heads.test_cam_head import saliency_cam_head


@MODELS.register_module(force=True)
class _IdentityBackbone(nn.Module):
    """Returns the input as the only feature map (known CAMs)."""

    def forward(self, x):
        return (x, )


@MODELS.register_module(force=True)
class _MeanSaliencyLoss(nn.Module):
    """A saliency loss with EPS's signature: mean |sal - bg map|."""

    def forward(self, cams, saliency, labels):
        return (saliency - cams[:, -1:]).abs().mean()


def _model(with_background=False, data_preprocessor=None, **test_cfg):
    model = MODELS.build(
        dict(
            type='CAMClassifier',
            data_preprocessor=data_preprocessor,
            backbone=dict(type='_IdentityBackbone'),
            head=dict(
                type='CAMHead',
                in_channels=3,
                num_classes=2,
                with_background=with_background),
            test_cfg=test_cfg))
    w = torch.zeros_like(model.head.classifier.weight)
    for c in range(w.shape[0]):
        w[c, c] = 1.0  # map c = input channel c
    model.head.classifier.weight.data.copy_(w)
    return model


def _sample(labels, hw=(8, 8), ori=None):
    ds = SegDataSample(
        metainfo=dict(img_shape=hw, ori_shape=ori or hw, img_path='x.jpg'))
    ds.gt_img_labels = torch.tensor(labels, dtype=torch.float32)
    return ds


def test_loss_is_multilabel_soft_margin_of_gap():
    model = _model()
    x = torch.randn(2, 3, 8, 8)
    samples = [_sample([1, 0]), _sample([1, 1])]
    losses = model.loss(x, samples)
    scores = x[:, :2].mean(dim=(2, 3))  # Eq. 1: GAP of the class maps
    y = torch.tensor([[1., 0.], [1., 1.]])
    expected = -(y * F.logsigmoid(scores) +
                 (1 - y) * F.logsigmoid(-scores)).mean()
    assert torch.allclose(losses['loss_cls'], expected, atol=1e-6)
    # The step's maps, published for hooks (OAAAccumulationHook).
    from mmengine.logging import MessageHub
    published = MessageHub.get_current_instance().get_info('train_cams')
    assert torch.allclose(published['cams'], x[:, :2])
    assert torch.allclose(published['scores'], scores)
    assert published['data_samples'] is samples


def test_predict_flip_tags_normalisation_and_original_size():
    model = _model(scales=(1.0, ), flip=True).eval()
    x = torch.zeros(1, 3, 8, 8)
    x[0, 0, 2:4, 1:3] = 2.0
    x[0, 0, 5, 5] = -3.0  # removed by ReLU
    x[0, 1] = 1.0  # class 1 is not tagged: zeroed
    out = model.predict(x, [_sample([1, 0], ori=(16, 16))])[0]
    cams = out.pred_cams.data
    assert cams.shape == (2, 16, 16)
    assert cams[1].abs().max() == 0
    assert torch.isclose(cams[0].max(), torch.tensor(1.0))
    # flip + unflip adds the same map twice: normalised it equals relu(x).
    expected = F.interpolate(
        F.relu(x[:, :1]) / 2.0,
        size=(16, 16),
        mode='bilinear',
        align_corners=False)[0, 0]
    assert torch.allclose(cams[0], expected, atol=1e-6)
    assert torch.allclose(out.pred_score, x[0, :2].mean(dim=(1, 2)).sigmoid())
    assert torch.equal(out.gt_score, torch.tensor([1., 0.]))


def test_test_batch_of_mixed_sizes_is_predicted_one_by_one():
    """mmseg's SegDataPreProcessor asserts one size per test batch."""
    init_default_scope('rca_mm')
    model = _model(
        data_preprocessor=dict(type='SegDataPreProcessor'),
        scales=(1.0, 0.5)).eval()
    g = torch.Generator().manual_seed(0)
    small = torch.rand(3, 8, 8, generator=g) * 255
    wide = torch.rand(3, 8, 12, generator=g) * 255

    def batch(*images):
        return dict(
            inputs=list(images),
            data_samples=[
                _sample([1, 1], hw=tuple(x.shape[1:])) for x in images
            ])

    out = model.test_step(batch(small, wide))
    assert [tuple(o.pred_cams.data.shape) for o in out] == [(2, 8, 8),
                                                            (2, 8, 12)]
    for got, image in zip(out, (small, wide)):
        alone = model.test_step(batch(image))[0]
        assert torch.equal(got.pred_cams.data, alone.pred_cams.data)
    # One size: still one stacked batch.
    same = model.test_step(batch(small, small))
    assert torch.equal(same[1].pred_cams.data, out[0].pred_cams.data)
    assert model.val_step(batch(small,
                                wide))[1].pred_cams.data.shape == (2, 8, 12)


def test_predict_multiscale_sums_scales_and_background_map():
    model = _model(with_background=True, scales=(1.0, 0.5)).eval()
    x = torch.rand(1, 3, 8, 8)
    out = model.predict(x, [_sample([1, 1])])[0]
    half = F.interpolate(
        F.interpolate(x, scale_factor=0.5, mode='bilinear'),
        size=(8, 8),
        mode='bilinear')
    total = x + half
    expected = total[0, :2] / total[0, :2].amax(dim=(1, 2), keepdim=True)
    assert torch.allclose(out.pred_cams.data, expected, atol=1e-6)
    assert out.pred_bg.data.shape == (1, 8, 8)
    assert torch.isclose(out.pred_bg.data.max(), torch.tensor(1.0))
    # EPS: the scores come from the L foreground maps only.
    assert out.pred_score.shape == (2, )


def test_predict_softmax_activation_as_eps_infer():
    model = _model(
        with_background=True, scales=(1.0, 0.5), activation='softmax').eval()
    x = torch.randn(1, 3, 8, 8)
    out = model.predict(x, [_sample([1, 0])])[0]
    # EPS infer.py: softmax over the L+1 maps per scale, then resize and sum.
    half = F.interpolate(x, scale_factor=0.5, mode='bilinear')
    total = x.softmax(1) + F.interpolate(
        half.softmax(1), size=(8, 8), mode='bilinear')
    expected = total[0, 0] / total[0, 0].max()
    assert torch.allclose(out.pred_cams.data[0], expected, atol=1e-6)
    assert out.pred_cams.data[1].abs().max() == 0  # not tagged
    with pytest.raises(ValueError, match='with_background'):
        _model(activation='softmax')
    with pytest.raises(ValueError, match="'relu' or 'softmax'"):
        _model(with_background=True, activation='sigmoid')


def test_predict_pred_tags_and_bad_test_cfg():
    model = _model(tags='pred', score_thr=0.5).eval()
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0] = 1.0  # sigmoid(1) > 0.5: kept
    x[0, 1] = -1.0
    out = model.predict(x, [_sample([0, 0], hw=(4, 4))])[0]
    assert out.pred_cams.data[0].min() == 1.0
    assert out.pred_cams.data[1].max() == 0.0
    with pytest.raises(ValueError, match='model.test_cfg has unknown keys'):
        _model(scale=(1.0, ))
    with pytest.raises(ValueError, match='model.head.saliency_loss'):
        MODELS.build(
            dict(
                type='CAMHead',
                in_channels=3,
                num_classes=2,
                saliency_loss=dict(type='MSELoss')))


def test_saliency_missing_is_a_clear_error():
    head = saliency_cam_head('_MeanSaliencyLoss')
    with pytest.raises(KeyError, match='LoadSaliencyMap'):
        head.loss(torch.rand(1, 3, 4, 4), [_sample([1, 0], hw=(4, 4))])
    sample = _sample([1, 0], hw=(4, 4))
    sample.gt_saliency = PixelData(data=torch.rand(1, 4, 4))
    feats = torch.rand(1, 3, 4, 4)
    losses = head.loss(feats, [sample])
    bg = head(feats)[:, -1:]
    assert torch.allclose(losses['loss_sal'],
                          (sample.gt_saliency.data - bg).abs().mean())


def test_predict_from_oaa_store(tmp_path):
    import numpy as np

    from rca_mm.fileio import OAAStore
    store = OAAStore(str(tmp_path / 'oaa'))
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, :2] = 0.5  # top half of class 1
    store.update('img1', [1], maps, ori_shape=(8, 8))
    model = _model(oaa_store=str(tmp_path / 'oaa')).eval()
    sample = _sample([0, 1], hw=(8, 8))
    sample.set_metainfo(dict(img_name='img1'))
    out = model.predict(torch.rand(1, 3, 8, 8), [sample])[0]
    cams = out.pred_cams.data
    assert cams.shape == (2, 8, 8)
    assert cams[0].max() == 0
    assert cams[1, :3].min() == 1.0 and cams[1, 5:].max() == 0.0
    missing = _model(oaa_store=str(tmp_path / 'nope')).eval()
    with pytest.raises(FileNotFoundError, match='model.test_cfg.oaa_store'):
        missing.predict(torch.rand(1, 3, 8, 8), [sample])


def test_val_step_runs_one_scale_without_flip_and_scores_alike():
    """Validation (the mAP of the image scores) does not pay for the
    export's scales and flips; the test step keeps them."""
    init_default_scope('rca_mm')
    model = _model(
        data_preprocessor=dict(type='SegDataPreProcessor'),
        scales=(1.0, 0.5, 1.5),
        flip=True).eval()
    single = _model(data_preprocessor=dict(type='SegDataPreProcessor')).eval()
    sizes = []
    model.backbone.register_forward_hook(
        lambda module, args, out: sizes.append(tuple(args[0].shape)))
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 8, 8, generator=g) * 255
    data = dict(inputs=[image], data_samples=[_sample([1, 1])])
    val = model.val_step(data)[0]
    assert sizes == [(1, 3, 8, 8)]
    expected = single.test_step(data)[0]
    assert torch.equal(val.pred_cams.data, expected.pred_cams.data)
    sizes.clear()
    test = model.test_step(data)[0]
    assert sizes == [(2, 3, 8, 8), (2, 3, 4, 4), (2, 3, 12, 12)]
    torch.testing.assert_close(val.pred_score, test.pred_score)
    assert not torch.equal(val.pred_cams.data, test.pred_cams.data)
    # The validation settings are config keys.
    model = _model(
        data_preprocessor=dict(type='SegDataPreProcessor'),
        scales=(1.0, ),
        val_scales=(1.0, 0.5),
        val_flip=True).eval()
    model.backbone.register_forward_hook(
        lambda module, args, out: sizes.append(tuple(args[0].shape)))
    sizes.clear()
    model.val_step(data)
    assert sizes == [(2, 3, 8, 8), (2, 3, 4, 4)]
    assert model.scales == (1.0, ) and not model.flip
    with pytest.raises(ValueError, match='val_scales'):
        _model(val_scales=())
