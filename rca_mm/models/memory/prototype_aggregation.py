"""Non-parametric aggregation of features with class prototypes (Eq. 7-8).

.. code:: text

    F (N, D, h, w) --pixels--> (N, hw, D)
    Q (L, K, D) --flatten--> (L*K, D), valid (L*K,)
    S = softmax_row(scale * F Q^T) over the valid prototypes     (Eq. 7)
    F' = S Q  --> (N, D, h, w)                                  (Eq. 8)

The prototypes Q come from k-means of each class's memory entries (Sec. 3.3,
:func:`rca_mm.models.memory.kmeans.batched_kmeans`) and are set with
:meth:`PrototypeAggregation.set_prototypes`. They are persistent buffers, so
they are saved in checkpoints and restored on resume.
"""
from typing import Optional, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from rca_mm.registry import MODELS


@MODELS.register_module()
class PrototypeAggregation(BaseModule):
    """Attention of every pixel over the class prototypes (Eq. 7-8).

    ``S = softmax_row(scale * F Q^T)`` over the valid prototypes of all
    classes (Eq. 7) and ``F' = S Q`` (Eq. 8); there are no learned
    projections, so the gradient reaches F through S only.

    Before prototypes are set (no valid prototype at all, e.g. before the
    first k-means), ``F' = 0``.

    Args:
        num_classes (int): L; with ``num_prototypes`` and ``channels`` sizes
            the buffers at construction. Default: 0 (empty until set).
        num_prototypes (int): K, prototypes per class (paper: 10).
            Default: 10.
        channels (int): D. Default: 0.
        scale (float): multiplier of ``F Q^T`` before the softmax. 1.0 is
            the paper's raw dot product; ``D ** -0.5`` is the scaled
            dot-product alternative (the released code multiplies by 2).
            Default: 1.0.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 *,
                 num_classes: int = 0,
                 num_prototypes: int = 10,
                 channels: int = 0,
                 scale: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if scale <= 0:
            raise ValueError(f'PrototypeAggregation: scale must be > 0, got '
                             f'{scale}')
        self.scale = scale
        self.register_buffer(
            'prototypes', torch.zeros(num_classes, num_prototypes, channels))
        self.register_buffer(
            'prototype_valid',
            torch.zeros(num_classes, num_prototypes, dtype=torch.bool))

    @property
    def has_prototypes(self) -> bool:
        """Whether at least one prototype is valid."""
        return bool(self.prototype_valid.any())

    @torch.no_grad()
    def set_prototypes(self, prototypes: Tensor, valid: Tensor) -> None:
        """Replace the prototypes Q (the k-means centres).

        The buffers take the given shapes (they may differ from the current
        ones) and stay on this module's device.

        Args:
            prototypes (Tensor): ``(L, K, D)`` class-wise centres.
            valid (Tensor): ``(L, K)`` bool; invalid prototypes get zero
                attention.

        Raises:
            ValueError: the shapes do not match.
        """
        if prototypes.dim() != 3 or valid.shape != prototypes.shape[:2]:
            raise ValueError(
                'PrototypeAggregation.set_prototypes expects prototypes '
                f'(L, K, D) and valid (L, K); got {tuple(prototypes.shape)} '
                f'and {tuple(valid.shape)}')
        device = self.prototypes.device
        self.prototypes = prototypes.detach().to(
            device=device, dtype=torch.float32).clone()
        self.prototype_valid = valid.detach().to(
            device=device, dtype=torch.bool).clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # The prototypes of a checkpoint are restored whatever the shape of
        # the buffers before loading (unset, or another K or D).
        for name in ('prototypes', 'prototype_valid'):
            saved = state_dict.get(prefix + name)
            current = getattr(self, name)
            if saved is not None and saved.shape != current.shape:
                setattr(self, name,
                        current.new_empty(saved.shape, dtype=current.dtype))
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(
        self,
        feats: Tensor,
        return_weights: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Optional[Tensor]]]:
        """Aggregate the prototypes for every pixel (Eq. 7-8).

        Args:
            feats (Tensor): F, ``(N, D, h, w)``.
            return_weights (bool): also return S. Default: False.

        Returns:
            Tensor | tuple[Tensor, Tensor | None]: ``F'`` with the shape and
            dtype of ``feats`` and, with ``return_weights``, ``S`` of shape
            ``(N, h*w, L*K)`` (None when no prototype is valid).

        Raises:
            ValueError: the channels of ``feats`` and of the prototypes
                differ.
        """
        if not self.has_prototypes:
            out = torch.zeros_like(feats)  # no prototypes yet: F' = 0
            return (out, None) if return_weights else out
        n, d, h, w = feats.shape
        protos = self.prototypes.flatten(0, 1).to(feats.dtype)  # (L*K, D)
        if protos.shape[1] != d:
            raise ValueError(
                f'PrototypeAggregation: features have {d} channels but the '
                f'prototypes have {protos.shape[1]}')
        valid = self.prototype_valid.flatten()
        pixels = feats.flatten(2).transpose(1, 2)  # (N, hw, D)
        logits = self.scale * (pixels @ protos.t())  # (N, hw, L*K)
        logits = logits.masked_fill(~valid, float('-inf'))
        weights = logits.softmax(dim=-1)  # Eq. 7: S = softmax_row(F Q^T)
        out = weights @ protos  # Eq. 8: F' = S Q
        out = out.transpose(1, 2).reshape(n, d, h, w)
        return (out, weights) if return_weights else out
