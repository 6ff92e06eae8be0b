"""WideResNet-38 ("resnet38d"), the backbone of AffinityNet/PSA and EPS.

Model A1 of Wu et al., "Wider or Deeper: Revisiting the ResNet Model for
Visual Recognition" (PR 2019), with the output stride reduced to 8 by
dilation, as in ``jiwoon-ahn/psa`` ``network/resnet38d.py`` (which EPS,
``halbielee/EPS``, imports unchanged). The blocks are pre-activation residual
blocks; module and parameter names follow that file, so its PyTorch state
dict loads after ``tools/model_converters/resnet38d.py`` (which only drops
the classifier keys).

.. code:: text

    conv1a    3x3, 64                                          stride 1
    b2..b2_2  3 x [3x3 128, 3x3 128], first stride 2           stride 2
    b3..b3_2  3 x [3x3 256, 3x3 256], first stride 2           stride 4
    b4..b4_5  6 x [3x3 512, 3x3 512], first stride 2           stride 8
    b5..b5_2  3 x [3x3 512, 3x3 1024], dilation 2 (b5: 1 then 2)
    b6        bottleneck [1x1 512, 3x3 1024 (dil. 4), 1x1 2048], dropout 0.3
    b7        bottleneck [1x1 1024, 3x3 2048 (dil. 4), 1x1 4096], dropout 0.5
    bn7, ReLU                                                  -> 4096 ch
"""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from rca_mm.registry import MODELS
from .strict_pretrained import StrictPretrainedMixin

RESNET38_HOW_TO_GET = (
    'download the ImageNet MXNet weights '
    'ilsvrc-cls_rna-a1_cls1000_ep-0001.params (linked from the PSA/EPS '
    'READMEs, github.com/jiwoon-ahn/psa) and convert them with '
    '`python tools/model_converters/resnet38d.py '
    'ilsvrc-cls_rna-a1_cls1000_ep-0001.params '
    'data/pretrained/resnet38d_ilsvrc.pth` '
    '(a PSA/EPS PyTorch resnet38d .pth converts the same way)')


class ResBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU, then conv3x3-BN-ReLU-conv3x3.

    The projection shortcut ``conv_branch1`` (1x1) takes the BN-ReLU'd input
    and exists when the shape changes.

    Args:
        in_channels (int): input channels.
        mid_channels (int): channels after the first conv.
        out_channels (int): output channels.
        stride (int): stride of the first conv and the shortcut. Default: 1.
        first_dilation (int): dilation of the first conv. Default: 1.
        dilation (int): dilation of the second conv. Default: 1.
    """

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 first_dilation: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(
            in_channels,
            mid_channels,
            3,
            stride,
            padding=first_dilation,
            dilation=first_dilation,
            bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_channels)
        self.conv_branch2b1 = nn.Conv2d(
            mid_channels,
            out_channels,
            3,
            padding=dilation,
            dilation=dilation,
            bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(
                in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Residual forward."""
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(act)
        out = self.conv_branch2a(act)
        out = self.conv_branch2b1(F.relu(self.bn_branch2b1(out)))
        return shortcut + out


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck (b6, b7): widths out/4, out/2, out.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        dilation (int): dilation of the 3x3 conv. Default: 1.
        dropout (float): ``Dropout2d`` rate before the 3x3 and the last 1x1
            conv. Default: 0.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 dilation: int = 1,
                 dropout: float = 0.) -> None:
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(
            in_channels, out_channels // 4, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(out_channels // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(
            out_channels // 4,
            out_channels // 2,
            3,
            padding=dilation,
            dilation=dilation,
            bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(out_channels // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(
            out_channels // 2, out_channels, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Residual forward (always with the projection shortcut)."""
        act = F.relu(self.bn_branch2a(x))
        out = self.conv_branch2a(act)
        out = self.dropout_2b1(F.relu(self.bn_branch2b1(out)))
        out = self.conv_branch2b1(out)
        out = self.dropout_2b2(F.relu(self.bn_branch2b2(out)))
        out = self.conv_branch2b2(out)
        return self.conv_branch1(act) + out


@MODELS.register_module()
class WideResNet38(StrictPretrainedMixin, BaseModule):
    """WideResNet-38 with output stride 8 (PSA/EPS "resnet38d").

    Stages (0-based, the indices of ``out_indices`` and ``frozen_stages``):
    0 ``conv1a`` (64 ch, stride 1), 1 ``b2*`` (128, 2), 2 ``b3*`` (256, 4),
    3 ``b4*`` (512, 8), 4 ``b5*`` (1024, 8), 5 ``b6`` (2048, 8), 6 ``b7`` +
    ``bn7`` + ReLU (4096, 8). Stages 0-5 output the raw residual sum (before
    the next block's BN-ReLU), stage 6 the ReLU'd ``bn7`` output that PSA and
    EPS feed to their classifier.

    Args:
        out_indices (Sequence[int]): stages whose outputs are returned, in
            increasing order. Default: (6,).
        frozen_stages (int): stages ``0..frozen_stages`` get
            ``requires_grad=False``: 0 is PSA's ``not_training`` (conv1a),
            1 is EPS's (conv1a, b2, b2_1, b2_2). -1 freezes nothing.
            Default: 1 (EPS).
        norm_eval (bool): keep every BatchNorm in eval mode (running
            statistics frozen) in ``train()``, as PSA and EPS do.
            Default: True.
        freeze_norm_affine (bool): also freeze the BatchNorm weights and
            biases (PSA/EPS set their ``requires_grad=False``).
            Default: True.
        init_cfg (dict | list[dict], optional): mmengine init config;
            ``dict(type='Pretrained', checkpoint=PATH)`` loads a converted
            file strictly. Default: None.
    """

    HOW_TO_GET = RESNET38_HOW_TO_GET

    def __init__(self,
                 *,
                 out_indices: Sequence[int] = (6, ),
                 frozen_stages: int = 1,
                 norm_eval: bool = True,
                 freeze_norm_affine: bool = True,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        out_indices = tuple(out_indices)
        if not out_indices or list(out_indices) != sorted(set(out_indices)) \
                or not all(0 <= i < 7 for i in out_indices):
            raise ValueError(
                'WideResNet38: out_indices must be increasing stage indices '
                f'in [0, 6], got {out_indices}')
        if not -1 <= frozen_stages <= 6:
            raise ValueError('WideResNet38: frozen_stages must be in [-1, 6], '
                             f'got {frozen_stages}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.freeze_norm_affine = freeze_norm_affine

        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.b2 = ResBlock(64, 128, 128, stride=2)
        self.b2_1 = ResBlock(128, 128, 128)
        self.b2_2 = ResBlock(128, 128, 128)
        self.b3 = ResBlock(128, 256, 256, stride=2)
        self.b3_1 = ResBlock(256, 256, 256)
        self.b3_2 = ResBlock(256, 256, 256)
        self.b4 = ResBlock(256, 512, 512, stride=2)
        for i in range(1, 6):
            self.add_module(f'b4_{i}', ResBlock(512, 512, 512))
        self.b5 = ResBlock(512, 512, 1024, first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(1024, 512, 1024, first_dilation=2, dilation=2)
        self.b5_2 = ResBlock(1024, 512, 1024, first_dilation=2, dilation=2)
        self.b6 = BottleneckBlock(1024, 2048, dilation=4, dropout=0.3)
        self.b7 = BottleneckBlock(2048, 4096, dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(4096)

        self.stage_modules: Tuple[Tuple[str, ...],
                                  ...] = (('conv1a', ), ('b2', 'b2_1', 'b2_2'),
                                          ('b3', 'b3_1', 'b3_2'), ('b4', ) +
                                          tuple(f'b4_{i}'
                                                for i in range(1, 6)),
                                          ('b5', 'b5_1',
                                           'b5_2'), ('b6', ), ('b7', 'bn7'))
        self.out_channels = (64, 128, 256, 512, 1024, 2048, 4096)
        self._freeze()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            x (Tensor): images (N, 3, H, W).

        Returns:
            tuple[Tensor]: the outputs of ``out_indices``; stage 6 is
            (N, 4096, ceil(H/8), ceil(W/8)).
        """
        outs = []
        for stage, names in enumerate(self.stage_modules):
            for name in names:
                x = getattr(self, name)(x)
            if stage == 6:
                x = F.relu(x)
            if stage in self.out_indices:
                outs.append(x)
            if stage == self.out_indices[-1]:
                break
        return tuple(outs)

    def _freeze(self) -> None:
        for stage in range(self.frozen_stages + 1):
            for name in self.stage_modules[stage]:
                for param in getattr(self, name).parameters():
                    param.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                if self.norm_eval:
                    m.eval()
                if self.freeze_norm_affine:
                    m.weight.requires_grad = False
                    m.bias.requires_grad = False

    def train(self, mode: bool = True) -> 'WideResNet38':
        """Set the mode; frozen stages stay frozen and, with ``norm_eval``,
        BatchNorms stay in eval mode."""
        super().train(mode)
        self._freeze()
        return self
