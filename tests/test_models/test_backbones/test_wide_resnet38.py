import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rca_mm.models.backbones import WideResNet38
from rca_mm.models.backbones.wide_resnet38 import BottleneckBlock, ResBlock
from rca_mm.registry import MODELS


@pytest.fixture(scope='module')
def r38():
    return MODELS.build(
        dict(type='WideResNet38', out_indices=tuple(range(7)))).eval()


def test_shapes_strides_channels(r38):
    with torch.no_grad():
        outs = r38(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 64, 64),
                                              (1, 128, 32, 32),
                                              (1, 256, 16, 16), (1, 512, 8, 8),
                                              (1, 1024, 8, 8), (1, 2048, 8, 8),
                                              (1, 4096, 8, 8)]
    assert (outs[-1] >= 0).all()  # ReLU(bn7)
    assert r38.out_channels == (64, 128, 256, 512, 1024, 2048, 4096)


def test_psa_key_names_and_dilations(r38):
    keys = set(r38.state_dict())
    for key in ('conv1a.weight', 'b2.conv_branch2a.weight',
                'b2.bn_branch2a.running_mean', 'b2.conv_branch1.weight',
                'b2_2.bn_branch2b1.weight', 'b4_5.conv_branch2b1.weight',
                'b5.conv_branch1.weight', 'b5_2.bn_branch2a.running_var',
                'b6.conv_branch2b2.weight', 'b6.bn_branch2b2.bias',
                'b7.conv_branch1.weight', 'bn7.running_var'):
        assert key in keys, key
    # Identity shortcuts have no projection; no conv has a bias.
    assert 'b2_1.conv_branch1.weight' not in keys
    assert 'b5_1.conv_branch1.weight' not in keys
    assert not any(k.startswith('conv1a.bias') for k in keys)
    for name in ('b2', 'b3', 'b4'):
        assert getattr(r38, name).conv_branch2a.stride == (2, 2)
        assert getattr(r38, name).conv_branch1.stride == (2, 2)
    assert r38.b5.conv_branch2a.dilation == (1, 1)
    assert r38.b5.conv_branch2b1.dilation == (2, 2)
    for name in ('b5_1', 'b5_2'):
        block = getattr(r38, name)
        assert block.conv_branch2a.dilation == (2, 2)
        assert block.conv_branch2b1.padding == (2, 2)
    for name in ('b6', 'b7'):
        block = getattr(r38, name)
        assert block.conv_branch2b1.dilation == (4, 4)
        assert block.conv_branch2a.kernel_size == (1, 1)
    assert r38.b6.dropout_2b1.p == 0.3 and r38.b7.dropout_2b2.p == 0.5
    assert r38.b7.conv_branch2b2.out_channels == 4096


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        False, 0., bn.eps)


def _randomize_bn(module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)


def test_resblock_matches_psa_equations():
    torch.manual_seed(0)
    block = ResBlock(4, 6, 8, stride=2, first_dilation=1, dilation=2).eval()
    _randomize_bn(block)
    x = torch.randn(2, 4, 9, 9)
    # PSA: a = relu(bn2a(x)); out = conv1(a) + conv2b1(relu(bn2b1(conv2a(a)))).
    a = F.relu(_bn(x, block.bn_branch2a))
    branch2 = F.conv2d(a, block.conv_branch2a.weight, stride=2, padding=1)
    branch2 = F.relu(_bn(branch2, block.bn_branch2b1))
    branch2 = F.conv2d(
        branch2, block.conv_branch2b1.weight, padding=2, dilation=2)
    expected = F.conv2d(a, block.conv_branch1.weight, stride=2) + branch2
    torch.testing.assert_close(block(x), expected)
    # Same shape: the shortcut is x itself, not the activated input.
    same = ResBlock(8, 4, 8).eval()
    _randomize_bn(same)
    x = torch.randn(1, 8, 5, 5)
    a = F.relu(_bn(x, same.bn_branch2a))
    branch2 = F.conv2d(
        F.relu(
            _bn(
                F.conv2d(a, same.conv_branch2a.weight, padding=1),
                same.bn_branch2b1)),
        same.conv_branch2b1.weight,
        padding=1)
    torch.testing.assert_close(same(x), x + branch2)


def test_bottleneck_matches_psa_equations():
    torch.manual_seed(0)
    block = BottleneckBlock(8, 16, dilation=4, dropout=0.5).eval()
    _randomize_bn(block)
    x = torch.randn(1, 8, 7, 7)
    a = F.relu(_bn(x, block.bn_branch2a))
    h = F.relu(
        _bn(F.conv2d(a, block.conv_branch2a.weight), block.bn_branch2b1))
    h = F.conv2d(h, block.conv_branch2b1.weight, padding=4, dilation=4)
    h = F.conv2d(
        F.relu(_bn(h, block.bn_branch2b2)), block.conv_branch2b2.weight)
    torch.testing.assert_close(
        block(x),
        F.conv2d(a, block.conv_branch1.weight) + h)
    assert block.conv_branch2a.out_channels == 4
    assert block.conv_branch2b1.out_channels == 8


def test_frozen_stages_and_norm_eval():
    model = WideResNet38(out_indices=(2, ))  # EPS: conv1a, b2, b2_1, b2_2
    model.train()
    for name, param in model.named_parameters():
        frozen = name.startswith(('conv1a.', 'b2.', 'b2_1.', 'b2_2.')) or \
            '.bn_' in name or name.startswith('bn7.')
        assert param.requires_grad is not frozen, name
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    # Running statistics do not move in train mode.
    mean = model.b3.bn_branch2a.running_mean.clone()
    model(torch.randn(2, 3, 16, 16))
    torch.testing.assert_close(model.b3.bn_branch2a.running_mean, mean)
    assert model.b3.conv_branch2a.weight.requires_grad

    psa = WideResNet38(
        frozen_stages=0, norm_eval=False, freeze_norm_affine=False).train()
    assert not psa.conv1a.weight.requires_grad
    assert psa.b2.conv_branch2a.weight.requires_grad
    assert psa.b2.bn_branch2a.weight.requires_grad
    assert all(m.training for m in psa.modules()
               if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(ValueError, match='frozen_stages'):
        WideResNet38(frozen_stages=7)


def test_missing_or_wrong_pretrained_file(tmp_path):
    path = str(tmp_path / 'resnet38d.pth')
    model = WideResNet38(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    msg = str(err.value)
    assert path in msg and 'ilsvrc-cls_rna-a1_cls1000_ep-0001.params' in msg
    assert 'tools/model_converters/resnet38d.py' in msg
    torch.save({'fc8.weight': torch.zeros(20, 4096, 1, 1)}, path)
    with pytest.raises(ValueError, match='do not match'):
        model.init_weights()
