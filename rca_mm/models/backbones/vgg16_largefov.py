"""VGG16-LargeFOV: the DeepLab-LargeFOV / OAA ``vgg16`` feature extractor.

The released OAA and RCA code build it from torchvision's layer list with the
configuration ``'D1'`` (``PengtaoJiang/OAA-PyTorch`` and ``maeve07/RCA``,
``models/vgg.py``/``models/rca.py``, ``make_layers``):

.. code:: text

    conv1_1 conv1_2  pool1  max 2x2 / 2           ->  64 ch, stride 2
    conv2_1 conv2_2  pool2  max 2x2 / 2           -> 128 ch, stride 4
    conv3_1..conv3_3 pool3  max 2x2 / 2           -> 256 ch, stride 8
    conv4_1..conv4_3 pool4  max 3x3 / 1, pad 1    -> 512 ch, stride 8
    conv5_1..conv5_3        3x3 dilation 2, pad 2 -> 512 ch, stride 8

Every convolution is 3x3 with a bias and is followed by a ReLU. There is no
pool5 and no fc6/fc7: the CAM head follows conv5_3. DeepLab-LargeFOV's Caffe
prototxt uses 3x3/2 pools with padding 1 for pool1-3 instead;
``pool_kernel_size=3`` selects those (same output size for even input
sizes). ``StrictPretrainedMixin`` (``strict_pretrained.py``) loads
``init_cfg=dict(type='Pretrained', ...)`` strictly for both backbones.
"""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from rca_mm.registry import MODELS
from .strict_pretrained import StrictPretrainedMixin

# (stage number, number of convs, output channels).
_VGG16_STAGES = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3,
                                                                     512))

VGG16_HOW_TO_GET = (
    'download torchvision\'s VGG16 weights from '
    'https://download.pytorch.org/models/vgg16-397923af.pth and convert them '
    'with `python tools/model_converters/vgg16_torchvision.py '
    'vgg16-397923af.pth data/pretrained/vgg16_largefov_torchvision.pth`')


@MODELS.register_module()
class VGG16LargeFOV(StrictPretrainedMixin, BaseModule):
    """VGG16 with output stride 8 (DeepLab-LargeFOV / OAA "vgg16").

    Stage ``i`` (0-based) is the block ``conv{i+1}_*`` followed by its pool
    (stage 4 has none); parameters are named ``conv{s}_{j}.weight`` and
    ``conv{s}_{j}.bias`` as in the Caffe VGG16; the converter
    ``tools/model_converters/vgg16_torchvision.py`` maps torchvision's
    ``features.{0,2,...,28}`` onto them.

    Args:
        out_indices (Sequence[int]): stages whose outputs are returned, in
            increasing order. Default: (4,), the stride-8 conv5_3 map.
        frozen_stages (int): the first ``frozen_stages`` stages are frozen
            (``requires_grad=False``), as in mmpretrain's ``VGG``: 1 freezes
            conv1; 0 or -1 freezes nothing. The released OAA and RCA code
            train every layer. Default: -1.
        pool_kernel_size (int): kernel of pool1-3 (stride 2): 2 as in the
            released OAA/RCA code (torchvision's pools), or 3 with padding 1
            as in DeepLab-LargeFOV's prototxt. Default: 2.
        dilation (int): dilation (and padding) of the conv5 convolutions.
            Default: 2 (OAA, DeepLab-LargeFOV).
        init_cfg (dict | list[dict], optional): mmengine init config;
            ``dict(type='Pretrained', checkpoint=PATH)`` loads a converted
            file strictly (see ``StrictPretrainedMixin``).
            Default: None.
    """

    HOW_TO_GET = VGG16_HOW_TO_GET

    def __init__(self,
                 *,
                 out_indices: Sequence[int] = (4, ),
                 frozen_stages: int = -1,
                 pool_kernel_size: int = 2,
                 dilation: int = 2,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        out_indices = tuple(out_indices)
        if not out_indices or list(out_indices) != sorted(set(out_indices)) \
                or not all(0 <= i < 5 for i in out_indices):
            raise ValueError(
                'VGG16LargeFOV: out_indices must be increasing stage indices '
                f'in [0, 4], got {out_indices}')
        if not -1 <= frozen_stages <= 5:
            raise ValueError('VGG16LargeFOV: frozen_stages must be in '
                             f'[-1, 5], got {frozen_stages}')
        if pool_kernel_size not in (2, 3):
            raise ValueError('VGG16LargeFOV: pool_kernel_size must be 2 '
                             f'(OAA) or 3 (DeepLab), got {pool_kernel_size}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.pool_kernel_size = pool_kernel_size
        self.dilation = dilation

        self.stage_convs: List[List[str]] = []
        in_channels = 3
        for stage, num_convs, channels in _VGG16_STAGES:
            names = []
            for j in range(1, num_convs + 1):
                d = dilation if stage == 5 else 1
                self.add_module(
                    f'conv{stage}_{j}',
                    nn.Conv2d(in_channels, channels, 3, padding=d, dilation=d))
                names.append(f'conv{stage}_{j}')
                in_channels = channels
            self.stage_convs.append(names)
        self.out_channels = tuple(c for _, _, c in _VGG16_STAGES)
        self._freeze_stages()

    def _pool(self, x: Tensor, stage: int) -> Tensor:
        """pool1-3: stride 2; pool4: 3x3 stride 1 (keeps stride 8)."""
        if stage < 3:
            k = self.pool_kernel_size
            return F.max_pool2d(
                x, k, stride=2, padding=k // 2 if k == 3 else 0)
        if stage == 3:
            return F.max_pool2d(x, 3, stride=1, padding=1)
        return x

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            x (Tensor): images (N, 3, H, W).

        Returns:
            tuple[Tensor]: the outputs of ``out_indices``; the last stage is
            (N, 512, H/8, W/8) for H, W divisible by 8.
        """
        outs = []
        for stage, names in enumerate(self.stage_convs):
            for name in names:
                x = F.relu(getattr(self, name)(x), inplace=True)
            x = self._pool(x, stage)
            if stage in self.out_indices:
                outs.append(x)
            if stage == self.out_indices[-1]:
                break
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for stage in range(max(self.frozen_stages, 0)):
            for name in self.stage_convs[stage]:
                for param in getattr(self, name).parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'VGG16LargeFOV':
        """Set the mode and keep the frozen stages frozen."""
        super().train(mode)
        self._freeze_stages()
        return self
