"""The saliency loss of EPS, used by RCA's EPS variant.

EPS: Lee et al., "Railroad is not a Train: Saliency as Pseudo-pixel
Supervision for Weakly Supervised Semantic Segmentation", CVPR 2021,
Sec. 3.2 (foreground/background maps, blended saliency, MSE loss).

Written from the paper and the released ``get_eps_loss``
(``halbielee/EPS``, ``eps.py``), vectorised over the batch:

.. code:: text

    P        = softmax over the L+1 maps (background = channel L)
    S        = saliency resized to the CAM size
    O_c      = sum(round(P_c) * round(S)) / sum(round(P_c) + 1e-4)   c < L
    fg       = sum of P_c over tagged c with O_c >  tau
    bg       = P_L + sum of P_c over tagged c with O_c <= tau
    S_hat    = lam * fg + (1 - lam) * (1 - bg)
    loss     = loss_weight * mean((S_hat - S)^2)

Details kept from the released code: the overlap ``O_c`` is the fraction of
the rounded (i.e. > 0.5) class map that lies on rounded saliency, with the
``1e-4`` added per pixel before the sum (so ``1e-4 * h * w`` in the
denominator); it is computed on detached probabilities (torch's rounding,
half to even); untagged classes join neither map. The released code resizes
the saliency with ``F.interpolate``'s default, nearest; here the default is
bilinear (``saliency_resize='nearest'`` restores the released behaviour).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rca_mm.registry import MODELS


@MODELS.register_module()
class EPSSaliencyLoss(nn.Module):
    """EPS saliency loss between blended class maps and a saliency map.

    Args:
        tau (float): overlap above which a tagged class counts as foreground.
            Default: 0.4 (EPS ``script/voc12_eps.sh``).
        lam (float): weight of the foreground map in the blend.
            Default: 0.5 (EPS ``main.py --lam``).
        saliency_resize (str): ``'bilinear'`` or ``'nearest'``, how the
            saliency map is resized to the CAM resolution. Default:
            ``'bilinear'`` (the released code uses nearest).
        loss_weight (float): multiplier of the loss. Default: 1.0.
        loss_name (str): key of the loss in the loss dict. Default:
            ``'loss_sal'``.
    """

    def __init__(self,
                 *,
                 tau: float = 0.4,
                 lam: float = 0.5,
                 saliency_resize: str = 'bilinear',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_sal') -> None:
        super().__init__()
        if saliency_resize not in ('bilinear', 'nearest'):
            raise ValueError(
                'EPSSaliencyLoss: saliency_resize must be '
                f"'bilinear' or 'nearest', got {saliency_resize!r}")
        if not 0. <= lam <= 1.:
            raise ValueError(f'EPSSaliencyLoss: lam must be in [0, 1], '
                             f'got {lam}')
        self.tau = tau
        self.lam = lam
        self.saliency_resize = saliency_resize
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """The key of this loss in the loss dict (mmseg convention)."""
        return self._loss_name

    def resize_saliency(self, saliency: Tensor, size: tuple) -> Tensor:
        """Resize (N, 1, H, W) saliency to ``size`` = (h, w)."""
        if tuple(saliency.shape[-2:]) == tuple(size):
            return saliency
        if self.saliency_resize == 'nearest':
            return F.interpolate(saliency, size=size, mode='nearest')
        return F.interpolate(
            saliency, size=size, mode='bilinear', align_corners=False)

    def overlap(self, probs: Tensor, saliency: Tensor) -> Tensor:
        """Overlap of each rounded class map with the rounded saliency.

        Args:
            probs (Tensor): (N, L, h, w) foreground probabilities.
            saliency (Tensor): (N, 1, h, w) saliency at the CAM size.

        Returns:
            Tensor: (N, L), ``sum(round(P_c) round(S)) / sum(round(P_c) +
            1e-4)``, computed without gradient.
        """
        with torch.no_grad():
            cls_mask = torch.round(probs)
            inter = (cls_mask * torch.round(saliency)).flatten(2).sum(-1)
            return inter / (cls_mask + 1e-4).flatten(2).sum(-1)

    def forward(self,
                cam_logits: Tensor,
                saliency: Tensor,
                img_labels: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            cam_logits (Tensor): (N, L+1, h, w) raw maps; channel L is the
                background.
            saliency (Tensor): (N, 1, H, W) saliency in [0, 1].
            img_labels (Tensor): (N, L) multi-hot image tags.
            weight (Tensor, optional): (N,) per-image weights of the squared
                error (e.g. 0 for images without a saliency map); the mean is
                then over the weighted images' pixels. Default: None.

        Returns:
            Tensor: the scalar loss.
        """
        n, c, h, w = cam_logits.shape
        if c < 2:
            raise ValueError('EPSSaliencyLoss: cam_logits needs L+1 >= 2 '
                             f'channels, got shape {tuple(cam_logits.shape)}')
        if tuple(img_labels.shape) != (n, c - 1):
            raise ValueError(
                f'EPSSaliencyLoss: img_labels must be (N, L) = {(n, c - 1)} '
                f'for cam_logits {tuple(cam_logits.shape)}, got '
                f'{tuple(img_labels.shape)}')
        if saliency.dim() != 4 or saliency.shape[:2] != (n, 1):
            raise ValueError('EPSSaliencyLoss: saliency must be (N, 1, H, W) '
                             f'with N={n}, got {tuple(saliency.shape)}')
        saliency = self.resize_saliency(saliency.to(cam_logits.dtype), (h, w))
        probs = F.softmax(cam_logits, dim=1)
        fg_probs, bg_prob = probs[:, :-1], probs[:, -1:]
        tagged = img_labels > 0.5
        confident = self.overlap(fg_probs, saliency) > self.tau
        # EPS Sec. 3.2: tagged classes overlapping the saliency form the
        # foreground map; the other tagged ones join the background channel.
        fg_sel = (tagged & confident).to(probs.dtype)[..., None, None]
        bg_sel = (tagged & ~confident).to(probs.dtype)[..., None, None]
        fg = (fg_probs * fg_sel).sum(1, keepdim=True)
        bg = bg_prob + (fg_probs * bg_sel).sum(1, keepdim=True)
        # EPS Sec. 3.2: the blended saliency estimate and its MSE loss.
        sal_pred = self.lam * fg + (1. - self.lam) * (1. - bg)
        sq_err = (sal_pred - saliency)**2
        if weight is None:
            return self.loss_weight * sq_err.mean()
        weight = weight.to(sq_err.dtype).view(n, 1, 1, 1)
        denom = (weight.sum() * h * w).clamp(min=1.)
        return self.loss_weight * (sq_err * weight).sum() / denom
