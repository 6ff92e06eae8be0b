"""Convert torchvision's VGG16 weights to rca_mm's ``VGG16LargeFOV`` keys.

Usage::

    wget https://download.pytorch.org/models/vgg16-397923af.pth
    python tools/model_converters/vgg16_torchvision.py \\
        vgg16-397923af.pth data/pretrained/vgg16_largefov_torchvision.pth

and in a config::

    backbone=dict(type='VGG16LargeFOV', init_cfg=dict(
        type='Pretrained',
        checkpoint='data/pretrained/vgg16_largefov_torchvision.pth'))

torchvision's ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}`` are the
13 convolutions conv1_1 ... conv5_3 (the other indices are ReLUs and pools);
``classifier.*`` (fc6-fc8) is dropped, as the released OAA/RCA code does.
The output holds only tensors and loads with ``torch.load(weights_only=True)``.
"""
import argparse
import os.path as osp
from collections import OrderedDict
from typing import Dict

import torch
from torch import Tensor

from rca_mm.fileio import atomic_write

# torchvision ``features`` index -> VGG16LargeFOV conv name.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
CONV_NAMES = ('conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2',
              'conv3_3', 'conv4_1', 'conv4_2', 'conv4_3', 'conv5_1', 'conv5_2',
              'conv5_3')


def convert_vgg16_torchvision(
        state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename a torchvision ``vgg16`` state dict to ``VGG16LargeFOV`` keys.

    Args:
        state_dict (dict[str, Tensor]): torchvision layout
            (``features.<i>.weight|bias`` and ``classifier.*``; a leading
            ``module.`` is stripped).

    Returns:
        OrderedDict[str, Tensor]: ``conv{s}_{j}.weight|bias``, 26 entries.

    Raises:
        ValueError: a key outside the torchvision layout, or a missing conv.
    """
    index_to_name = dict(zip(TORCHVISION_CONV_INDICES, CONV_NAMES))
    converted = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if key.startswith('classifier.'):
            continue
        parts = key.split('.')
        if (len(parts) != 3 or parts[0] != 'features'
                or not parts[1].isdigit() or int(parts[1]) not in index_to_name
                or parts[2] not in ('weight', 'bias')):
            raise ValueError(
                f'unexpected key {key!r}: not a torchvision vgg16 (without '
                'batch norm) state dict')
        converted[f'{index_to_name[int(parts[1])]}.{parts[2]}'] = value
    missing = [
        f'{n}.{p}' for n in CONV_NAMES for p in ('weight', 'bias')
        if f'{n}.{p}' not in converted
    ]
    if missing:
        raise ValueError(f'the torchvision vgg16 state dict lacks {missing}')
    return OrderedDict((f'{n}.{p}', converted[f'{n}.{p}']) for n in CONV_NAMES
                       for p in ('weight', 'bias'))


def load_torch_state_dict(src: str) -> Dict[str, Tensor]:
    """Load a ``.pth`` with ``weights_only=True``; unwrap ``state_dict``."""
    if not osp.isfile(src):
        raise FileNotFoundError(
            f'{src!r} does not exist; torchvision\'s VGG16 is at '
            'https://download.pytorch.org/models/vgg16-397923af.pth')
    ckpt = torch.load(src, map_location='cpu', weights_only=True)
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src!r} does not hold a state dict')
    return ckpt


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Convert torchvision vgg16 weights to VGG16LargeFOV keys')
    parser.add_argument('src', help='torchvision vgg16-397923af.pth')
    parser.add_argument('dst', help='output .pth for init_cfg Pretrained')
    args = parser.parse_args()
    converted = convert_vgg16_torchvision(load_torch_state_dict(args.src))
    atomic_write(args.dst, lambda tmp: torch.save(converted, tmp))
    print(f'wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
