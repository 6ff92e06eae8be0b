"""Multi-scale + flip CAM export against a sum computed by hand.

The model here is position-dependent: its backbone multiplies the image by
a fixed ramp that changes along both axes and is negative on the left, so
its maps of a flipped image are not the flipped maps of the image. With it,
deleting the flip, flipping only one side of it or flipping the wrong axis
changes the CAMs (an identity backbone, equivariant to flips, hides all
three).
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from rca_mm.registry import MODELS


def ramp(height: int, width: int) -> torch.Tensor:
    """``(1, 1, h, w)``: -1 -> 2 from left to right, 1 -> 1.5 from top to
    bottom."""
    cols = torch.linspace(-1.0, 2.0, width)
    rows = torch.linspace(1.0, 1.5, height)
    return (rows[:, None] * cols[None, :])[None, None]


@MODELS.register_module(force=True)
class _RampBackbone(nn.Module):
    """``F = x * ramp(h, w)``: the same image seen at another position (or
    mirrored) gives other features."""

    def forward(self, x):
        return (x * ramp(*x.shape[2:]), )


def _model(**test_cfg):
    model = MODELS.build(
        dict(
            type='CAMClassifier',
            backbone=dict(type='_RampBackbone'),
            head=dict(type='CAMHead', in_channels=3, num_classes=2),
            test_cfg=test_cfg))
    weight = torch.zeros_like(model.head.classifier.weight)
    weight[0, 0] = weight[1, 1] = 1.0  # map c = channel c of F
    model.head.classifier.weight.data.copy_(weight)
    return model.eval()


def _resize(x, **kwargs):
    return F.interpolate(x, mode='bilinear', align_corners=False, **kwargs)


def hand_sum(x, scales, flip):
    """The CAMs of each scale at the input size, summed; with ``flip``, also
    those of the mirrored image mirrored back, which are the image's maps
    under the mirrored ramp: ``flip(relu(flip(x) * r)) = relu(x * flip(r))``.
    """
    total = torch.zeros(x.shape[0], 2, *x.shape[2:])
    for scale in scales:
        xs = _resize(x, scale_factor=scale)[:, :2]
        r = ramp(*xs.shape[2:])
        total += _resize(F.relu(xs * r), size=x.shape[2:])
        if flip:
            total += _resize(F.relu(xs * r.flip(-1)), size=x.shape[2:])
    return total


def _sample(shape):
    sample = SegDataSample(
        metainfo=dict(img_shape=shape, ori_shape=shape, img_path='x.jpg'))
    sample.gt_img_labels = torch.tensor([1.0, 1.0])
    return sample


@pytest.mark.parametrize(
    'scales,flip',
    [
        ((1.0, 0.5, 1.5), True),  # the SynthVOC configs' export
        ((0.5, 1.5),
         True),  # no scale 1.0: the scores need a forward of their own
        ((0.75, 1.0), False),
        ((1.0, ), True),
    ])
def test_cams_equal_the_sum_over_scales_and_flips(scales, flip):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 12, generator=g) + 0.1  # not square: the axes
    samples = [_sample((8, 12)), _sample((8, 12))]
    out = _model(scales=scales, flip=flip).predict(x, samples)
    total = hand_sum(x, scales, flip)
    for i, sample in enumerate(out):
        expected = total[i] / total[i].amax(dim=(1, 2), keepdim=True)
        assert torch.allclose(sample.pred_cams.data, expected, atol=1e-5)
        # The image scores: GAP of the raw maps at scale 1, not flipped.
        scores = (x[i, :2] * ramp(8, 12)[0]).mean(dim=(1, 2))
        assert torch.allclose(sample.pred_score, scores.sigmoid(), atol=1e-6)


def test_flip_changes_the_cams_of_this_model():
    """The model breaks the symmetry: without the flip the CAMs differ from
    the flipped sum by far more than the tolerance above (a test that
    passes with the flip deleted proves nothing)."""
    x = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    samples = [_sample((8, 12))]
    plain = _model(scales=(1.0, 0.5), flip=False).predict(x, samples)
    with_flip = _model(
        scales=(1.0, 0.5), flip=True).predict(x, [_sample((8, 12))])
    diff = (plain[0].pred_cams.data - with_flip[0].pred_cams.data).abs()
    assert diff.max() > 0.2
    mirrored = _model(
        scales=(1.0, 0.5), flip=False).predict(x.flip(-1), [_sample((8, 12))])
    assert (mirrored[0].pred_cams.data.flip(-1) -
            plain[0].pred_cams.data).abs().max() > 0.2
