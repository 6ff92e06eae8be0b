"""Convert ResNet-38 ("resnet38d") weights to rca_mm's ``WideResNet38`` keys.

Two sources, chosen by the file name:

- ``*.params``: the ImageNet weights that PSA and EPS start from,
  ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params`` (MXNet, Wu et al.; linked
  from the READMEs of ``jiwoon-ahn/psa`` and ``halbielee/EPS``). PSA
  converts it with ``mxnet.nd.load`` (``network/resnet38d.py``,
  ``convert_mxnet_to_torch``). mxnet is not needed here: the file is an
  MXNet NDArray list file (header ``0x112``, the arrays, then their names),
  which :func:`read_mxnet_params` parses directly (legacy, V1 and V2 dense
  arrays). MXNet names such as ``arg:res4b1_branch2a_weight`` and
  ``aux:bn5a_branch2b1_moving_var`` map to ``b4_1.conv_branch2a.weight``
  and ``b5.bn_branch2b1.running_var``; ``linear1000`` is dropped. Should the
  parser ever refuse a file, converting in an environment with mxnet works
  too: ``python -c "import mxnet, numpy; d = mxnet.nd.load('SRC.params');
  numpy.savez('SRC.npz', **{k: v.asnumpy() for k, v in d.items()})"``, then
  pass ``SRC.npz`` to this script.
- anything else: a PyTorch state dict of PSA's/EPS's ``resnet38d.Net`` (or a
  subclass: ``fc8`` and other head keys are dropped; ``module.`` stripped).
  Its module names already are ours.

Usage::

    python tools/model_converters/resnet38d.py \\
        ilsvrc-cls_rna-a1_cls1000_ep-0001.params \\
        data/pretrained/resnet38d_ilsvrc.pth

The output holds the backbone's complete state dict (BatchNorm
``num_batches_tracked`` filled with 0 where the source has none), is checked
key by key and shape by shape against ``WideResNet38``, and loads with
``torch.load(weights_only=True)`` through
``init_cfg=dict(type='Pretrained', checkpoint=...)``.
"""
import argparse
import os.path as osp
import re
import struct
from collections import OrderedDict
from typing import BinaryIO, Mapping, Tuple

import numpy as np
import torch
from torch import Tensor

from rca_mm.fileio import atomic_write

MXNET_LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
# mshadow type flags -> numpy dtypes.
MXNET_DTYPES = {
    0: np.float32,
    1: np.float64,
    2: np.float16,
    3: np.uint8,
    4: np.int32,
    5: np.int8,
    6: np.int64
}
BN_SUFFIXES = {
    'gamma': 'weight',
    'beta': 'bias',
    'moving_mean': 'running_mean',
    'moving_var': 'running_var'
}
# res4b1_branch2a_weight, bn5a_branch2b1_moving_var, ...
_BLOCK_KEY = re.compile(r'^(res|bn)(\d)(a|b(\d+))_(branch\w+?)_'
                        r'(weight|gamma|beta|moving_mean|moving_var)$')


def _read(f: BinaryIO, fmt: str) -> Tuple:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError('truncated MXNet .params file')
    return struct.unpack(fmt, data)


def _read_ndarray(f: BinaryIO) -> np.ndarray:
    (magic, ) = _read(f, '<I')
    if magic == NDARRAY_V2_MAGIC:
        (stype, ) = _read(f, '<i')
        if stype != 0:
            raise ValueError(f'sparse NDArray (storage type {stype}) in an '
                             'MXNet .params file is not supported')
    if magic in (NDARRAY_V1_MAGIC, NDARRAY_V2_MAGIC):
        (ndim, ) = _read(f, '<I')
        shape = _read(f, f'<{ndim}q')
    else:  # legacy: the magic was the ndim, dims are uint32
        ndim = magic
        if ndim > 32:
            raise ValueError(f'unknown NDArray header {magic:#x}')
        shape = _read(f, f'<{ndim}I')
    if ndim == 0:
        return np.zeros((0, ), np.float32)
    _read(f, '<ii')  # context: device type and id
    (type_flag, ) = _read(f, '<i')
    if type_flag not in MXNET_DTYPES:
        raise ValueError(f'unknown MXNet dtype flag {type_flag}')
    dtype = np.dtype(MXNET_DTYPES[type_flag])
    count = int(np.prod(shape))
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError('truncated MXNet .params file')
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def read_mxnet_params(path: str) -> 'OrderedDict[str, np.ndarray]':
    """Read an MXNet NDArray list file (what ``mxnet.nd.save`` writes).

    Args:
        path (str): the ``.params`` file.

    Returns:
        OrderedDict[str, np.ndarray]: name -> array, names as stored (with
        their ``arg:``/``aux:`` prefixes).
    """
    with open(path, 'rb') as f:
        magic, _ = _read(f, '<QQ')
        if magic != MXNET_LIST_MAGIC:
            raise ValueError(f'{path!r} is not an MXNet NDArray list file '
                             f'(header {magic:#x}, expected 0x112)')
        (count, ) = _read(f, '<Q')
        arrays = [_read_ndarray(f) for _ in range(count)]
        (num_names, ) = _read(f, '<Q')
        names = []
        for _ in range(num_names):
            (length, ) = _read(f, '<Q')
            names.append(f.read(length).decode('ascii'))
    if len(names) != len(arrays):
        raise ValueError(f'{path!r}: {len(arrays)} arrays but '
                         f'{len(names)} names')
    return OrderedDict(zip(names, arrays))


def mxnet_name_to_torch(name: str) -> str:
    """``arg:res4b1_branch2a_weight`` -> ``b4_1.conv_branch2a.weight``.

    Returns:
        str: the ``WideResNet38`` key, or '' for the ImageNet classifier
        (``linear1000``), which is dropped.
    """
    name = name.split(':', 1)[-1]
    if name.startswith('linear1000'):
        return ''
    if name == 'conv1a_weight':
        return 'conv1a.weight'
    if name.startswith('bn7_') and name[4:] in BN_SUFFIXES:
        return f'bn7.{BN_SUFFIXES[name[4:]]}'
    match = _BLOCK_KEY.match(name)
    if match is None:
        raise ValueError(f'unexpected MXNet ResNet-38 parameter {name!r}')
    kind, stage, _, sub, branch, suffix = match.groups()
    block = f'b{stage}' + (f'_{sub}' if sub else '')
    if kind == 'res':
        if suffix != 'weight':
            raise ValueError(f'unexpected MXNet ResNet-38 parameter {name!r}')
        return f'{block}.conv_{branch}.weight'
    if suffix == 'weight':
        raise ValueError(f'unexpected MXNet ResNet-38 parameter {name!r}')
    return f'{block}.bn_{branch}.{BN_SUFFIXES[suffix]}'


def convert_resnet38d_mxnet(
        params: Mapping[str, np.ndarray]) -> 'OrderedDict[str, Tensor]':
    """Rename MXNet ResNet-38 arrays to ``WideResNet38`` keys.

    Args:
        params (Mapping[str, np.ndarray]): MXNet name -> array.

    Returns:
        OrderedDict[str, Tensor]: renamed tensors (without the classifier),
        completed and checked by :func:`finalize_state_dict`.
    """
    renamed = OrderedDict()
    for name, array in params.items():
        key = mxnet_name_to_torch(name)
        if key:
            renamed[key] = torch.from_numpy(np.ascontiguousarray(array))
    return finalize_state_dict(renamed)


def convert_resnet38d_torch(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Keep the backbone keys of a PSA/EPS PyTorch ``resnet38d`` state dict.

    Args:
        state_dict (Mapping[str, Tensor]): PSA/EPS keys (``conv1a.weight``,
            ``b2.conv_branch2a.weight``, ..., ``bn7.running_var``, and head
            keys such as ``fc8.weight``, which are dropped).

    Returns:
        OrderedDict[str, Tensor]: the backbone's state dict, checked by
        :func:`finalize_state_dict`.
    """
    backbone = re.compile(r'^(conv1a|b[2-7](_\d)?|bn7)\.')
    kept = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if backbone.match(key):
            kept[key] = value
    return finalize_state_dict(kept)


def finalize_state_dict(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Fill missing ``num_batches_tracked`` and check against the backbone.

    The reference keys and shapes come from ``WideResNet38`` built on the
    ``meta`` device (no memory is allocated).

    Raises:
        ValueError: keys missing or unexpected, or shapes differing.
    """
    from rca_mm.models.backbones import WideResNet38
    with torch.device('meta'):
        reference = WideResNet38().state_dict()
    out = OrderedDict()
    for key, ref in reference.items():
        if key in state_dict:
            value = state_dict[key]
        elif key.endswith('num_batches_tracked'):
            value = torch.tensor(0, dtype=torch.long)
        else:
            continue
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(f'{key}: shape {tuple(value.shape)} in the '
                             f'source, WideResNet38 has {tuple(ref.shape)}')
        out[key] = value.to(ref.dtype) if value.is_floating_point() \
            else value
    missing = [k for k in reference if k not in out]
    unexpected = [k for k in state_dict if k not in reference]
    if missing or unexpected:
        raise ValueError(
            'the source does not match WideResNet38: '
            f'{len(missing)} missing keys (e.g. {missing[:3]}), '
            f'{len(unexpected)} unexpected (e.g. {unexpected[:3]})')
    return out


def load_source(src: str) -> 'OrderedDict[str, Tensor]':
    """Read and convert ``src`` (``.params``, ``.npz`` or a torch file)."""
    if not osp.isfile(src):
        raise FileNotFoundError(
            f'{src!r} does not exist; get the ImageNet ResNet-38 weights '
            'ilsvrc-cls_rna-a1_cls1000_ep-0001.params from the link in the '
            'README of github.com/jiwoon-ahn/psa')
    if src.endswith('.params'):
        return convert_resnet38d_mxnet(read_mxnet_params(src))
    if src.endswith('.npz'):
        with np.load(src) as npz:
            return convert_resnet38d_mxnet({k: npz[k] for k in npz.files})
    ckpt = torch.load(src, map_location='cpu', weights_only=True)
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src!r} does not hold a state dict')
    return convert_resnet38d_torch(ckpt)


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Convert ResNet-38 weights (MXNet .params, or a PSA/EPS '
        'PyTorch resnet38d state dict) to WideResNet38 keys')
    parser.add_argument(
        'src',
        help='ilsvrc-cls_rna-a1_cls1000_ep-0001.params, an .npz of '
        'it, or a PSA/EPS .pth')
    parser.add_argument('dst', help='output .pth for init_cfg Pretrained')
    args = parser.parse_args()
    converted = load_source(args.src)
    atomic_write(args.dst, lambda tmp: torch.save(converted, tmp))
    print(f'wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
