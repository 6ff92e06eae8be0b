import pytest
import torch
import torch.nn.functional as F

from rca_mm.models.backbones import VGG16LargeFOV
from rca_mm.registry import MODELS


def test_shapes_strides_channels():
    model = MODELS.build(
        dict(type='VGG16LargeFOV', out_indices=(0, 1, 2, 3, 4)))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 32, 32),
                                              (1, 128, 16, 16), (1, 256, 8, 8),
                                              (1, 512, 8, 8), (1, 512, 8, 8)]
    assert model.out_channels == (64, 128, 256, 512, 512)
    # Default: only the stride-8 conv5_3 map.
    (out, ) = VGG16LargeFOV()(torch.randn(2, 3, 40, 48))
    assert out.shape == (2, 512, 5, 6)


def test_pools_and_dilation():
    model = VGG16LargeFOV()
    for stage, num in ((1, 2), (2, 2), (3, 3), (4, 3)):
        for j in range(1, num + 1):
            conv = getattr(model, f'conv{stage}_{j}')
            assert conv.dilation == (1, 1) and conv.padding == (1, 1)
    for j in (1, 2, 3):
        conv = getattr(model, f'conv5_{j}')
        assert conv.dilation == (2, 2) and conv.padding == (2, 2)
        assert conv.kernel_size == (3, 3) and conv.bias is not None
    # pool4 is 3x3 stride 1 pad 1: the stage-3 output is the max over a
    # 3x3 window of relu(conv4_3).
    model = VGG16LargeFOV(out_indices=(3, ))
    x = torch.randn(1, 3, 32, 32)
    (out, ) = model(x)
    h = x
    for name in ('conv1_1', 'conv1_2', 'P', 'conv2_1', 'conv2_2', 'P',
                 'conv3_1', 'conv3_2', 'conv3_3', 'P', 'conv4_1', 'conv4_2',
                 'conv4_3'):
        h = F.max_pool2d(h, 2, 2) if name == 'P' else F.relu(
            getattr(model, name)(h))
    pooled = torch.stack([
        F.pad(h, (1, 1, 1, 1), value=float('-inf'))[..., i:i + 4, j:j + 4]
        for i in range(3) for j in range(3)
    ]).amax(0)
    torch.testing.assert_close(out, pooled)


def test_pool_kernel_size_odd_inputs():
    x = torch.randn(1, 3, 65, 65)
    oaa = VGG16LargeFOV(out_indices=(0, 1, 4))
    deeplab = VGG16LargeFOV(out_indices=(0, 1, 4), pool_kernel_size=3)
    # 2x2/2 floors (OAA, torchvision); 3x3/2 pad 1 rounds up (DeepLab).
    assert [o.shape[-1] for o in oaa(x)] == [32, 16, 8]
    assert [o.shape[-1] for o in deeplab(x)] == [33, 17, 9]
    with pytest.raises(ValueError, match='pool_kernel_size'):
        VGG16LargeFOV(pool_kernel_size=4)
    with pytest.raises(ValueError, match='out_indices'):
        VGG16LargeFOV(out_indices=(4, 2))


def test_frozen_stages_stay_frozen():
    model = VGG16LargeFOV(frozen_stages=2)  # conv1 and conv2
    model.train()
    for name, param in model.named_parameters():
        frozen = name.startswith(('conv1_', 'conv2_'))
        assert param.requires_grad is not frozen, name
    # An optimizer step leaves the frozen weights unchanged.
    before = model.conv1_1.weight.clone()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=1.)
    model(torch.randn(1, 3, 16, 16))[0].sum().backward()
    optim.step()
    assert model.conv1_1.weight.grad is None
    torch.testing.assert_close(model.conv1_1.weight, before)
    assert all(p.requires_grad for p in VGG16LargeFOV().parameters())
    assert all(
        p.requires_grad for p in VGG16LargeFOV(frozen_stages=0).parameters())
    conv1_only = VGG16LargeFOV(frozen_stages=1).train()
    assert [
        n for n, p in conv1_only.named_parameters() if not p.requires_grad
    ] == ['conv1_1.weight', 'conv1_1.bias', 'conv1_2.weight', 'conv1_2.bias']


def test_missing_pretrained_file_is_clear(tmp_path):
    path = str(tmp_path / 'nope.pth')
    model = VGG16LargeFOV(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    assert path in str(err.value)
    assert 'vgg16-397923af.pth' in str(err.value)
    assert 'vgg16_torchvision.py' in str(err.value)


def test_unconverted_file_is_refused(tmp_path):
    # A torchvision-layout file: mmengine's Pretrained would only warn.
    path = str(tmp_path / 'raw.pth')
    torch.save({'features.0.weight': torch.zeros(64, 3, 3, 3)}, path)
    model = VGG16LargeFOV(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='unconverted'):
        model.init_weights()


def test_pretrained_with_prefix(tmp_path):
    src = VGG16LargeFOV()
    path = str(tmp_path / 'whole_model.pth')
    torch.save(
        {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in src.state_dict().items()
            }
        }, path)
    model = VGG16LargeFOV(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(model(x)[0], src(x)[0])
