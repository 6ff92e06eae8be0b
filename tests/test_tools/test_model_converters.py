"""tools/model_converters: torchvision VGG16 and ResNet-38 (PyTorch, MXNet)
layouts -> VGG16LargeFOV / WideResNet38, loaded through init_cfg."""
import importlib.util
import os.path as osp
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from rca_mm.models.backbones import VGG16LargeFOV, WideResNet38
from ..conftest import REPO


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_conv_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vgg_tool = _load_tool('vgg16_torchvision')
r38_tool = _load_tool('resnet38d')


def _run_main(tool, src, dst, capsys=None, expect=None):
    """Run a converter's command line (argparse ``SRC DST``) in-process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr('sys.argv', [tool.__file__, src, dst])
        tool.main()
    if expect is not None:
        assert expect in capsys.readouterr().out


@pytest.fixture(scope='module')
def tv_features():
    torch.manual_seed(0)
    return torchvision.models.vgg16().features.eval()


def test_vgg16_cli_roundtrip_matches_torchvision(tmp_path, tv_features,
                                                 capsys):
    # The torchvision file layout: features.* plus classifier.* (kept tiny
    # here: the converter drops it whatever its shape).
    src = str(tmp_path / 'vgg16-397923af.pth')
    state = {f'features.{k}': v for k, v in tv_features.state_dict().items()}
    state['classifier.0.weight'] = torch.zeros(2, 2)
    state['classifier.6.bias'] = torch.zeros(2)
    torch.save(state, src)
    dst = str(tmp_path / 'out' / 'vgg16_largefov.pth')
    _run_main(vgg_tool, src, dst, capsys, 'wrote 26 tensors')
    assert set(torch.load(dst, weights_only=True)) == set(
        VGG16LargeFOV().state_dict())

    model = VGG16LargeFOV(
        out_indices=(2, 3, 4),
        init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    model.eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        pool3, pool4, conv5 = model(x)
        # conv1-conv3 + pool3 are torchvision's features[:17].
        torch.testing.assert_close(pool3, tv_features[:17](x))
        # conv4_3 relu is features[:23]; then pool4 3x3/1 instead of 2x2/2.
        ref = F.max_pool2d(tv_features[:23](x), 3, 1, 1)
        torch.testing.assert_close(pool4, ref)
        # conv5 with the same weights, dilated by 2.
        for idx in (24, 26, 28):
            conv = tv_features[idx]
            ref = F.relu(
                F.conv2d(ref, conv.weight, conv.bias, padding=2, dilation=2))
        torch.testing.assert_close(conv5, ref)


def test_vgg16_converter_errors(tmp_path):
    with pytest.raises(ValueError, match='unexpected key'):
        vgg_tool.convert_vgg16_torchvision(
            {'features.1.weight': torch.zeros(1)})  # a ReLU index
    with pytest.raises(ValueError, match='lacks'):
        vgg_tool.convert_vgg16_torchvision(
            {'features.0.weight': torch.zeros(1)})
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError) as err:
        _run_main(vgg_tool, missing, str(tmp_path / 'x.pth'))
    assert missing in str(err.value)
    assert 'download.pytorch.org' in str(err.value)
    assert not osp.exists(str(tmp_path / 'x.pth'))


def _psa_block_ref(x, sd, prefix, stride, same_shape):
    """PSA's ResBlock forward (eval BN) from original-layout keys."""

    def bn(t, name):
        return F.batch_norm(t, sd[f'{prefix}.{name}.running_mean'],
                            sd[f'{prefix}.{name}.running_var'],
                            sd[f'{prefix}.{name}.weight'],
                            sd[f'{prefix}.{name}.bias'], False, 0., 1e-5)

    a = F.relu(bn(x, 'bn_branch2a'))
    branch1 = x if same_shape else F.conv2d(
        a, sd[f'{prefix}.conv_branch1.weight'], stride=stride)
    b = F.conv2d(
        a, sd[f'{prefix}.conv_branch2a.weight'], stride=stride, padding=1)
    b = F.conv2d(
        F.relu(bn(b, 'bn_branch2b1')),
        sd[f'{prefix}.conv_branch2b1.weight'],
        padding=1)
    return branch1 + b


# Loading into meta parameters is a no-op that torch warns about.
@pytest.mark.filterwarnings('ignore:for .*copying from a non-meta parameter')
def test_resnet38d_cli_full_size_loads_strictly(tmp_path, capsys):
    # Full-size EPS checkpoint layout on the meta device (shapes, no data):
    # DataParallel prefix, the fc8 head, and (older torch) no
    # num_batches_tracked.
    with torch.device('meta'):
        reference = WideResNet38().state_dict()
    src = str(tmp_path / 'res38_eps.pth')
    eps = {
        f'module.{k}': v
        for k, v in reference.items() if not k.endswith('num_batches_tracked')
    }
    eps['module.fc8.weight'] = torch.empty(21, 4096, 1, 1, device='meta')
    torch.save(eps, src)
    dst = str(tmp_path / 'resnet38d.pth')
    # 191 parameters and statistics + 37 BatchNorm num_batches_tracked.
    _run_main(r38_tool, src, dst, capsys, 'wrote 228 tensors')
    converted = torch.load(dst, weights_only=True)
    assert list(converted) == list(reference)
    assert all(converted[k].shape == v.shape for k, v in reference.items())
    with torch.device('meta'):
        model = WideResNet38(init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()  # strict: raises on any key or shape difference
    assert model.is_init


def test_resnet38d_torch_values_roundtrip():
    torch.manual_seed(0)
    source = WideResNet38()
    for m in source.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-.5, .5)
            m.running_var.uniform_(.5, 2.)
    sd = source.state_dict()
    eps = {f'module.{k}': v for k, v in sd.items()}
    eps['module.fc8.weight'] = torch.zeros(21, 4096, 1, 1)
    converted = r38_tool.convert_resnet38d_torch(eps)
    assert 'fc8.weight' not in converted
    assert all(torch.equal(converted[k], v) for k, v in sd.items())

    model = WideResNet38(out_indices=(1, ))
    model.load_state_dict(converted, strict=True)
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    model.eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        (stage1, ) = model(x)
        # The PSA forward of conv1a, b2, b2_1, b2_2 from the original keys.
        ref = F.conv2d(x, eps['module.conv1a.weight'], padding=1)
        ref = _psa_block_ref(ref, sd, 'b2', 2, False)
        ref = _psa_block_ref(ref, sd, 'b2_1', 1, True)
        ref = _psa_block_ref(ref, sd, 'b2_2', 1, True)
        torch.testing.assert_close(stage1, ref)


def _mx_name(key):
    """Our key -> the MXNet name in ilsvrc-cls_rna-a1_cls1000_ep-0001."""
    module, *rest = key.split('.')
    if module == 'conv1a':
        return 'arg:conv1a_weight'
    bn = {
        'weight': 'arg:{}_gamma',
        'bias': 'arg:{}_beta',
        'running_mean': 'aux:{}_moving_mean',
        'running_var': 'aux:{}_moving_var'
    }
    if module == 'bn7':
        return bn[rest[0]].format('bn7')
    stage = module[1]
    block = 'a' if '_' not in module else 'b' + module.split('_')[1]
    layer, param = rest
    kind, branch = layer.split('_', 1)
    if kind == 'conv':
        return f'arg:res{stage}{block}_{branch}_weight'
    return bn[param].format(f'bn{stage}{block}_{branch}')


def test_resnet38d_mxnet_names_cover_all_keys():
    with torch.device('meta'):
        keys = [
            k for k in WideResNet38().state_dict()
            if not k.endswith('num_batches_tracked')
        ]
    # conv1a; 4 projection ResBlocks x 11 + 11 identity ones x 10; 2
    # bottlenecks x 16; bn7 x 4.
    assert len(keys) == 1 + 44 + 110 + 32 + 4
    for key in keys:
        assert r38_tool.mxnet_name_to_torch(_mx_name(key)) == key
    assert r38_tool.mxnet_name_to_torch(
        'arg:res4b1_branch2a_weight') == 'b4_1.conv_branch2a.weight'
    assert r38_tool.mxnet_name_to_torch(
        'aux:bn5a_branch2b1_moving_var') == 'b5.bn_branch2b1.running_var'
    assert r38_tool.mxnet_name_to_torch('arg:linear1000_weight') == ''
    with pytest.raises(ValueError, match='fc1000'):
        r38_tool.mxnet_name_to_torch('arg:fc1000_weight')


def _write_mx_params(path, arrays, version):
    """Write an MXNet NDArray list file (format of NDArray::Save/Load)."""
    flags = {np.float32: 0, np.float64: 1, np.float16: 2, np.int64: 6}
    with open(path, 'wb') as f:
        f.write(struct.pack('<QQQ', 0x112, 0, len(arrays)))
        for arr in arrays.values():
            if version == 2:
                f.write(struct.pack('<Ii', 0xF993FAC9, 0))
            if version in (1, 2):
                if version == 1:
                    f.write(struct.pack('<I', 0xF993FAC8))
                f.write(struct.pack(f'<I{arr.ndim}q', arr.ndim, *arr.shape))
            else:  # legacy
                f.write(struct.pack(f'<I{arr.ndim}I', arr.ndim, *arr.shape))
            f.write(struct.pack('<iii', 1, 0, flags[arr.dtype.type]))
            f.write(arr.tobytes())
        f.write(struct.pack('<Q', len(arrays)))
        for name in arrays:
            f.write(struct.pack('<Q', len(name)) + name.encode())


@pytest.mark.parametrize('version', [0, 1, 2])
def test_read_mxnet_params(tmp_path, version):
    rng = np.random.default_rng(version)
    arrays = {
        'arg:conv1a_weight': rng.random((4, 3, 3, 3)).astype(np.float32),
        'aux:bn7_moving_var': rng.random(5).astype(np.float64),
        'arg:bn2a_branch2a_gamma': rng.random((2, 3)).astype(np.float16),
    }
    path = str(tmp_path / 'x.params')
    _write_mx_params(path, arrays, version)
    read = r38_tool.read_mxnet_params(path)
    assert list(read) == list(arrays)
    for name, arr in arrays.items():
        assert read[name].dtype == arr.dtype
        np.testing.assert_array_equal(read[name], arr)


def test_resnet38d_mxnet_incomplete_file_is_clear(tmp_path):
    src = str(tmp_path / 'ilsvrc-cls_rna-a1_cls1000_ep-0001.params')
    _write_mx_params(
        src, {
            'arg:conv1a_weight': np.zeros((64, 3, 3, 3), np.float32),
            'arg:linear1000_weight': np.zeros((3, 2), np.float32)
        }, 2)
    with pytest.raises(ValueError, match='does not match WideResNet38'):
        _run_main(r38_tool, src, str(tmp_path / 'o.pth'))
    assert not osp.exists(str(tmp_path / 'o.pth'))
    with open(src, 'r+b') as f:
        f.write(struct.pack('<Q', 7))
    with pytest.raises(ValueError, match='not an MXNet NDArray list'):
        r38_tool.read_mxnet_params(src)


@pytest.mark.parametrize('tool', [vgg_tool, r38_tool], ids=['vgg16', 'r38'])
def test_an_interrupted_write_leaves_no_file(tmp_path, tool):
    """The converters write through rca_mm.fileio's atomic writer: a save
    that fails half-way leaves neither the output nor a temporary file, and
    an existing output untouched."""
    if tool is vgg_tool:
        src = str(tmp_path / 'vgg16.pth')
        torch.manual_seed(0)
        torch.save(
            {
                f'features.{k}': v
                for k, v in
                torchvision.models.vgg16().features.state_dict().items()
            }, src)
    else:
        src = str(tmp_path / 'r38.pth')
        torch.save(WideResNet38().state_dict(), src)
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    dst = out_dir / 'converted.pth'
    real_save = torch.save

    def failing_save(obj, f):
        if hasattr(f, 'write'):
            f.write(b'partial')
        else:
            with open(f, 'wb') as fh:
                fh.write(b'partial')
        raise OSError(28, 'No space left on device')

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tool.torch, 'save', failing_save)
        with pytest.raises(OSError) as err:
            _run_main(tool, src, str(dst))
    assert str(dst) in str(err.value)
    assert list(out_dir.iterdir()) == []
    real_save({'old': torch.zeros(1)}, str(dst))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tool.torch, 'save', failing_save)
        with pytest.raises(OSError):
            _run_main(tool, src, str(dst))
    assert list(out_dir.iterdir()) == [dst]
    assert set(torch.load(str(dst), weights_only=True)) == {'old'}
