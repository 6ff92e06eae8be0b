"""The class-aware CAM head: a 1x1 convolution + GAP (Eq. 1), and EPS.

.. code:: text

    backbone map --[3x3 conv + ReLU] x num_convs--> F (N, D, h, w)
    F --[dropout]--conv1x1--> P (N, L[+1], h, w) --GAP--> p (N, L)
                                                          \\
                    multi-label soft-margin loss(p, y)      saliency loss
                                                            (EPS, optional)

With ``with_background=True`` the head predicts L+1 maps (the background map
last) and the image scores come from the first L maps only, as EPS does
(Lee et al., CVPR 2021); the saliency loss is then usually configured too.
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.utils import OptConfigType
from torch import Tensor

from rca_mm.registry import MODELS


def stack_img_labels(data_samples: list) -> Tensor:
    """The multi-hot tags ``(N, L)`` of a batch of ``SegDataSample``."""
    return torch.stack([ds.gt_img_labels for ds in data_samples]).float()


def stack_saliency(data_samples: list) -> Tensor:
    """The saliency maps ``(N, 1, H, W)`` in [0, 1] of a batch.

    Raises:
        KeyError: a sample has no ``gt_saliency`` (the pipeline must load it
            with ``LoadSaliencyMap``).
    """
    maps = []
    for ds in data_samples:
        if 'gt_saliency' not in ds:
            raise KeyError(
                f'image {ds.metainfo.get("img_path")} has no saliency map, '
                'but the head has a saliency loss: add '
                "dict(type='LoadSaliencyMap') to train_dataloader.dataset."
                'pipeline and set data_prefix.sal_path')
        maps.append(ds.gt_saliency.data.float())
    return torch.stack(maps)


def gap_scores(cams: Tensor, num_classes: int) -> Tensor:
    """Image scores ``p_l = GAP(P_l)`` of the foreground maps (Eq. 1)."""
    return cams[:, :num_classes].mean(dim=(2, 3))


@MODELS.register_module()
class CAMHead(BaseModule):
    """The CAM classifier's head (Eq. 1), optionally with EPS's saliency loss.

    Args:
        in_channels (int): channels of the backbone's last feature map.
        num_classes (int): foreground classes L.
        num_convs (int): new 3x3 conv + ReLU layers before the classifier
            (OAA's VGG16 classifier has 3 of 512 channels). Their output is
            ``F``. Default: 0.
        channels (int): channels of those layers. Default: 512.
        dropout_ratio (float): dropout before the classifier (EPS uses 0.5
            on ResNet-38). Default: 0.
        with_background (bool): predict an extra background map (EPS).
            Default: False.
        loss_weight (float): weight of the classification loss. Default: 1.0.
        saliency_loss (dict, optional): config of a saliency loss, e.g.
            ``dict(type='EPSSaliencyLoss')``, computed on the L+1 maps.
            Needs ``with_background``. Default: None.
        classifier_bias (bool): give the class-aware 1x1 conv a bias,
            zero-initialised and trained, as OAA's and the released RCA
            code's classifiers. Default: False (none).
        init_cfg (dict, optional): initialisation. Default: normal(0, 0.01),
            as the OAA and EPS classifiers.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        num_convs: int = 0,
        channels: int = 512,
        dropout_ratio: float = 0.0,
        with_background: bool = False,
        loss_weight: float = 1.0,
        saliency_loss: OptConfigType = None,
        classifier_bias: bool = False,
        init_cfg: OptConfigType = dict(
            type='Normal', layer='Conv2d', std=0.01)
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if saliency_loss is not None and not with_background:
            raise ValueError(
                'model.head.saliency_loss needs model.head.with_background='
                'True: the saliency loss uses the background map (EPS)')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.with_background = with_background
        self.loss_weight = loss_weight
        self.classifier_bias = classifier_bias
        self.num_maps = num_classes + int(with_background)
        layers = []
        for i in range(num_convs):
            layers += [
                nn.Conv2d(
                    in_channels if i == 0 else channels,
                    channels,
                    3,
                    padding=1),
                nn.ReLU(inplace=True)
            ]
        self.convs = nn.Sequential(*layers)
        self.feat_channels = channels if num_convs else in_channels
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 \
            else nn.Identity()
        # Eq. 1: the class-aware 1x1 convolution.
        self.classifier = self.class_conv(self.feat_channels)
        self.saliency_loss = (
            MODELS.build(saliency_loss) if saliency_loss is not None else None)

    def class_conv(self, in_channels: int) -> nn.Conv2d:
        """A class-aware 1x1 conv to the maps, its bias (if any) zero."""
        conv = nn.Conv2d(
            in_channels, self.num_maps, 1, bias=self.classifier_bias)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        return conv

    def features(self, feats: Tensor) -> Tensor:
        """``F``: the backbone map through the head's own conv layers."""
        return self.convs(feats)

    def classify(self, x: Tensor) -> Tensor:
        """The class maps ``P = conv1x1(F)`` (Eq. 1), ``(N, L[+1], h, w)``."""
        return self.classifier(self.dropout(x))

    def forward(self, feats: Tensor) -> Tensor:
        """The class maps ``P`` of a backbone feature map."""
        return self.classify(self.features(feats))

    def predict_cams(self, feats: Tensor) -> Tensor:
        """The maps used as CAMs at test time, ``(N, L[+1], h, w)``."""
        return self.forward(feats)

    def map_losses(self, cams: Tensor, labels: Tensor, data_samples: list,
                   suffix: str, weight: float) -> Dict[str, Tensor]:
        """Classification (and saliency) losses of one set of class maps.

        Args:
            cams (Tensor): class maps ``(N, L[+1], h, w)``.
            labels (Tensor): multi-hot tags ``(N, L)``.
            data_samples (list): the batch's samples (saliency maps).
            suffix (str): loss name suffix, e.g. ``'p'`` -> ``loss_cls_p``.
            weight (float): weight of the classification term.

        Returns:
            dict: ``loss_cls[_suffix]`` and, with a saliency loss,
            ``loss_sal[_suffix]``.
        """
        tail = f'_{suffix}' if suffix else ''
        scores = gap_scores(cams, self.num_classes)
        # Eq. 11's L_CE: the multi-label soft-margin loss, mean over images
        # and classes.
        losses = {
            f'loss_cls{tail}':
            weight * F.multilabel_soft_margin_loss(scores, labels)
        }
        if self.saliency_loss is not None:
            saliency = stack_saliency(data_samples).to(cams.device)
            losses[f'loss_sal{tail}'] = self.saliency_loss(
                cams, saliency, labels)
        return losses

    def loss(self, feats: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """Named losses of a training batch (see :meth:`loss_and_predict`).

        Args:
            feats (Tensor): the backbone's feature map ``(N, C, h, w)``.
            data_samples (list): the batch's samples, with ``gt_img_labels``.

        Returns:
            dict: the loss terms.
        """
        return self.loss_and_predict(feats, data_samples)[0]

    def loss_and_predict(
            self, feats: Tensor,
            data_samples: list) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """Losses of a training batch and the maps they were computed from.

        Args:
            feats (Tensor): the backbone's feature map ``(N, C, h, w)``.
            data_samples (list): the batch's samples, with ``gt_img_labels``.

        Returns:
            tuple: the loss dict (``loss_cls``, and ``loss_sal`` with a
            saliency loss), and ``dict(cams, scores)`` of the final
            classifier, detached (:meth:`train_outputs`).
        """
        labels = stack_img_labels(data_samples).to(feats.device)
        cams = self.forward(feats)
        losses = self.map_losses(cams, labels, data_samples, '',
                                 self.loss_weight)
        return losses, self.train_outputs(cams)

    def train_outputs(self, cams: Tensor) -> Dict[str, Tensor]:
        """The final classifier's training maps, detached: ``cams``, the L
        foreground maps ``(N, L, h, w)``, and ``scores``, their image logits
        ``(N, L)``."""
        cams = cams.detach()
        return dict(
            cams=cams[:, :self.num_classes],
            scores=gap_scores(cams, self.num_classes))

    def scores(self, feats: Tensor) -> Tensor:
        """Image-level logits ``(N, L)`` of the final classifier."""
        return gap_scores(self.predict_cams(feats), self.num_classes)


__all__ = ['CAMHead', 'stack_img_labels', 'stack_saliency', 'gap_scores']
