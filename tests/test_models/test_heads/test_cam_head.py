import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.registry import MODELS


def _samples(tags, hw=(4, 4)):
    out = []
    for t in tags:
        s = SegDataSample()
        s.gt_img_labels = torch.tensor(t, dtype=torch.float32)
        s.gt_saliency = PixelData(data=torch.rand(1, *hw))
        out.append(s)
    return out


def saliency_cam_head(loss_type: str):
    """A CAMHead of 2 classes on 3 channels with a background channel and
    the saliency loss ``loss_type``."""
    return MODELS.build(
        dict(
            type='CAMHead',
            in_channels=3,
            num_classes=2,
            with_background=True,
            saliency_loss=dict(type=loss_type)))


def test_loss_is_a_dict_and_loss_and_predict_adds_the_maps():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='CAMHead', in_channels=3, num_classes=2))
    feats = torch.randn(2, 3, 4, 4)
    samples = _samples([[1, 0], [1, 1]])
    losses = head.loss(feats, samples)
    assert isinstance(losses, dict) and set(losses) == {'loss_cls'}
    cams = head(feats)
    scores = cams.mean(dim=(2, 3))  # Eq. 1
    expected = F.multilabel_soft_margin_loss(
        scores, torch.tensor([[1., 0.], [1., 1.]]))
    torch.testing.assert_close(losses['loss_cls'], expected)
    again, maps = head.loss_and_predict(feats, samples)
    torch.testing.assert_close(again, losses)
    assert set(maps) == {'cams', 'scores'}
    torch.testing.assert_close(maps['cams'], cams)
    torch.testing.assert_close(maps['scores'], scores)
    assert not maps['cams'].requires_grad
    assert not maps['scores'].requires_grad


def test_maps_for_hooks_are_the_foreground_ones_with_background():
    head = saliency_cam_head('EPSSaliencyLoss')
    feats = torch.randn(2, 3, 4, 4)
    losses, maps = head.loss_and_predict(feats, _samples([[1, 0], [0, 1]]))
    assert set(losses) == {'loss_cls', 'loss_sal'}
    cams = head(feats)
    assert cams.shape[1] == 3
    torch.testing.assert_close(maps['cams'], cams[:, :2])
    torch.testing.assert_close(maps['scores'], cams[:, :2].mean(dim=(2, 3)))
