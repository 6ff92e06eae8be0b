"""DeepLabV2's ASPP classifier: parallel dilated 3x3 convolutions, summed.

DeepLabV2 (Chen et al., "DeepLab: Semantic Image Segmentation with Deep
Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI
2018, Sec. 3.3 and Fig. 4(b), "ASPP-L") puts four 3x3 convolutions with
dilations 6, 12, 18 and 24 on the last ResNet-101 stage. Each maps the
features straight to the class scores; the four score maps are summed. There
is no image pooling, no 1x1 branch and no normalisation (DeepLabV3's ASPP,
mmseg's ``ASPPHead``, differs in all three).
"""
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from rca_mm.registry import MODELS


@MODELS.register_module()
class ASPPV2Head(BaseDecodeHead):
    """DeepLabV2 ASPP head: ``sum_d conv3x3_d(x)`` over the dilations ``d``.

    The branches are themselves the classifier, so the ``conv_seg`` that
    :class:`BaseDecodeHead` creates (a 1x1 conv from ``channels``) is removed
    and ``cls_seg`` is not used. ``channels`` is therefore not an argument;
    it is set to ``in_channels`` for the base class. Dropout (off by default,
    as in DeepLabV2's ResNet-101 model) is applied, when asked, to the input
    features, i.e. before the classifier as in ``cls_seg``.

    Every convolution is initialised N(0, 0.01) with zero bias, as in
    DeepLabV2's released prototxt and deeplab-pytorch.

    Args:
        dilations (Sequence[int]): dilation (and padding) of each branch.
            Default: (6, 12, 18, 24) (DeepLabV2 ASPP-L).
        dropout_ratio (float): ``Dropout2d`` probability on the input
            features. Default: 0.0.
        **kwargs: the other arguments of :class:`BaseDecodeHead`
            (``in_channels``, ``num_classes``, ``in_index``, ``loss_decode``,
            ``align_corners``, ...). ``norm_cfg``/``act_cfg`` are accepted and
            unused: the head has neither normalisation nor activation.
    """

    def __init__(self,
                 *,
                 dilations: Sequence[int] = (6, 12, 18, 24),
                 dropout_ratio: float = 0.0,
                 init_cfg: dict = dict(
                     type='Normal', std=0.01, bias=0., layer='Conv2d'),
                 **kwargs) -> None:
        if 'channels' in kwargs:
            raise TypeError(
                'ASPPV2Head: `channels` is not an argument; its branches map '
                '`in_channels` straight to the classes (DeepLabV2)')
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError('ASPPV2Head: `dilations` must be a non-empty '
                             f'sequence of positive ints, got {dilations}')
        in_channels = kwargs.pop('in_channels')
        super().__init__(
            in_channels,
            in_channels,
            dropout_ratio=dropout_ratio,
            init_cfg=init_cfg,
            **kwargs)
        # The branches below are the classifier (see the class docstring).
        del self.conv_seg
        self.dilations: Tuple[int, ...] = tuple(int(d) for d in dilations)
        self.aspp_convs = nn.ModuleList(
            nn.Conv2d(
                self.in_channels,
                self.out_channels,
                kernel_size=3,
                padding=d,
                dilation=d,
                bias=True) for d in self.dilations)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Sum the dilated branches' class scores (DeepLabV2 Fig. 4(b)).

        Args:
            inputs (list[Tensor]): the backbone's multi-level features.

        Returns:
            Tensor: (N, num_classes, H, W) logits at the feature resolution.
        """
        x = self._transform_inputs(inputs)
        if self.dropout is not None:
            x = self.dropout(x)
        # ASPP-L fusion: the branches' score maps are added.
        output = self.aspp_convs[0](x)
        for conv in self.aspp_convs[1:]:
            output = output + conv(x)
        return output
