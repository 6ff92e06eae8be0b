"""FLOPs of tiny models whose multiply-adds are known by hand."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rca_mm.registry import MODELS
from rca_mm.utils.model_complexity import (complexity_model, format_count,
                                           input_shape_of, model_complexity)

H = W = 16  # input; the backbone halves it: F is 8 x 8
D, L, K = 8, 3, 4


@MODELS.register_module(force=True)
class _OneConvBackbone(nn.Module):
    """One 3x3 stride-2 conv, 3 -> D channels, no bias."""

    def __init__(self, init_cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(3, D, 3, stride=2, padding=1, bias=False)

    def forward(self, x):
        return (self.conv(x), )


def tiny_cfg(head_type='CAMHead', **head):
    return Config(
        dict(
            model=dict(
                type='CAMClassifier',
                backbone=dict(
                    type='_OneConvBackbone',
                    init_cfg=dict(type='Pretrained', checkpoint='no.pth')),
                head=dict(
                    type=head_type, in_channels=D, num_classes=L, **head))))


BACKBONE = 8 * 8 * D * 3 * 9  # output pixels x out ch. x in ch. x 3 x 3
CLASSIFIER = 8 * 8 * L * D  # Eq. 1, a 1x1 conv D -> L


def test_known_counts_of_a_cam_classifier():
    init_default_scope('rca_mm')
    model = complexity_model(tiny_cfg())  # the Pretrained file is not read
    assert not model.training
    info = model_complexity(model, (H, W))
    assert info['input_shape'] == (3, H, W)
    assert info['flops'] == BACKBONE + CLASSIFIER == 15360
    assert info['flops_by_module'] == {
        '': 15360,
        'backbone': BACKBONE,
        'head': CLASSIFIER
    }
    assert info['params'] == D * 3 * 9 + L * D
    assert info['params_by_module']['backbone'] == D * 3 * 9


def test_rca_head_counts_the_aggregation_and_the_second_classifier():
    init_default_scope('rca_mm')
    model = complexity_model(
        tiny_cfg(
            'RCAHead',
            aggregation=dict(type='PrototypeAggregation', num_prototypes=K)))
    aggregation = model.head.aggregation
    assert aggregation.prototype_valid.shape == (L, K)
    assert bool(aggregation.prototype_valid.all())
    info = model_complexity(model, (H, W), max_depth=2)
    # Eq. 7 (F Q^T) and Eq. 8 (S Q): 2 L K D multiply-adds per pixel of F;
    # Eq. 10: a 1x1 conv 2D -> L. P (Eq. 1) is not computed at inference.
    eq7_8 = 2 * 8 * 8 * L * K * D
    eq10 = 8 * 8 * L * 2 * D
    assert info['flops_by_module']['head.aggregation'] == eq7_8 == 12288
    assert info['flops_by_module']['head.classifier_o'] == eq10
    assert info['flops'] == BACKBONE + eq7_8 + eq10
    # softmax and the scale are element-wise: listed, not counted.
    assert 'aten::softmax' in info['unsupported']


def test_num_prototypes_none_gets_ten():
    init_default_scope('rca_mm')
    model = complexity_model(
        tiny_cfg(
            'RCAHead',
            aggregation=dict(type='PrototypeAggregation',
                             num_prototypes=None)))
    assert model.head.aggregation.prototypes.shape == (L, 10, D)


def test_shapes_and_format():
    assert input_shape_of([5]) == (3, 5, 5)
    assert input_shape_of([5, 7]) == (3, 5, 7)
    assert input_shape_of([1, 5, 7]) == (1, 5, 7)
    with pytest.raises(ValueError, match='--shape'):
        input_shape_of([1, 2, 3, 4])
    assert format_count(15360) == '15.360 K'
    assert format_count(2.5e9) == '2.500 G'
    assert format_count(12) == '12'


def test_the_count_runs_on_the_model_device():
    init_default_scope('rca_mm')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = complexity_model(tiny_cfg()).to(device)
    assert model_complexity(model, (H, W))['flops'] == 15360
