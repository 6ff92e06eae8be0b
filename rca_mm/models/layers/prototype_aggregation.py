"""Class prototypes by k-means, and the aggregation with them (Eq. 7-8).

.. code:: text

    bank entries of class l --k-means_K (Sec. 3.3, no equation)--> Q_l
    F (N, D, h, w) --pixels--> (N, hw, D)
    Q (L, K, D) --flatten--> (L*K, D), valid (L*K,)
    S = softmax_row(scale * F Q^T) over the valid prototypes     (Eq. 7)
    F' = S Q  --> (N, D, h, w)                                  (Eq. 8)

K and the k-means settings are this module's config, the only place they
are set (``model.head.aggregation``). :meth:`PrototypeAggregation.cluster`
computes Q from the memory entries with
:func:`rca_mm.models.memory.kmeans.batched_kmeans` (called by
``RCAHead.refresh_prototypes`` at the start of each epoch from
``start_epoch`` on). The prototypes are persistent buffers, so they are
saved in checkpoints and restored on resume.
"""
from typing import Optional, Tuple, Union

import torch
from mmengine.dist import broadcast, get_rank, is_distributed
from mmengine.model import BaseModule
from torch import Tensor

from rca_mm.registry import MODELS
from ..memory.kmeans import batched_kmeans


@MODELS.register_module()
class PrototypeAggregation(BaseModule):
    """Attention of every pixel over the class prototypes (Eq. 7-8).

    ``S = softmax_row(scale * F Q^T)`` over the valid prototypes of all
    classes (Eq. 7) and ``F' = S Q`` (Eq. 8); there are no learned
    projections, so the gradient reaches F through S only. The prototypes
    Q are the k-means centres of each class's memory entries (Sec. 3.3),
    set by :meth:`cluster`.

    Before prototypes are set (no valid prototype at all, e.g. before the
    first k-means), ``F' = 0``.

    Args:
        num_classes (int): L; with ``num_prototypes`` and ``channels`` sizes
            the buffers at construction. Default: 0 (empty until set).
        num_prototypes (int, optional): K, the k-means clusters per class.
            None keeps every written entry as a prototype (the "all"
            ablation; the buffers are then sized by each clustering).
            Default: 10 (paper).
        channels (int): D. Default: 0.
        scale (float): multiplier of ``F Q^T`` before the softmax. 1.0 is
            the paper's raw dot product; ``D ** -0.5`` is the scaled
            dot-product alternative (the released code multiplies by 2).
            Default: 1.0.
        num_iters (int): Lloyd iterations of the k-means. Default: 50.
        num_init (int): k-means++ restarts, the lowest inertia kept.
            Default: 3.
        start_epoch (int): the first epoch whose prototypes are clustered
            (at epoch 0 the bank is empty, and F' = 0). Default: 1 (the
            released code).
        seed (int): k-means seed; the epoch is added. Default: 0.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 *,
                 num_classes: int = 0,
                 num_prototypes: Optional[int] = 10,
                 channels: int = 0,
                 scale: float = 1.0,
                 num_iters: int = 50,
                 num_init: int = 3,
                 start_epoch: int = 1,
                 seed: int = 0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if scale <= 0:
            raise ValueError(f'PrototypeAggregation: scale must be > 0, got '
                             f'{scale}')
        if num_prototypes is not None and num_prototypes < 1:
            raise ValueError('PrototypeAggregation: num_prototypes must be '
                             f'>= 1 or None, got {num_prototypes}')
        self.scale = scale
        self.num_prototypes = num_prototypes
        self.num_iters = num_iters
        self.num_init = num_init
        self.start_epoch = start_epoch
        self.seed = seed
        k = num_prototypes or 0
        self.register_buffer('prototypes', torch.zeros(num_classes, k,
                                                       channels))
        self.register_buffer('prototype_valid',
                             torch.zeros(num_classes, k, dtype=torch.bool))
        # Whether a prototype is valid, kept on the host: the buffers change
        # only in set_prototypes and on loading, so the forward of every
        # step reads no device value.
        self._has_prototypes = False

    @property
    def has_prototypes(self) -> bool:
        """Whether at least one prototype is valid."""
        return self._has_prototypes

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
        self._has_prototypes = bool(self.prototype_valid.any())

    @torch.no_grad()
    def cluster(self, entries: Tensor, mask: Tensor, epoch: int) -> int:
        """Set Q to the k-means centres of each class's entries (Sec. 3.3).

        K-means with ``num_prototypes`` clusters (every entry of the
        fullest class where None), ``num_iters`` Lloyd iterations,
        ``num_init`` restarts and the seed ``seed + epoch``. On several
        processes only rank 0 clusters and its centres are broadcast, so
        every replica aggregates with the same prototypes.

        Args:
            entries (Tensor): ``(L, N, D)`` per-class memory entries.
            mask (Tensor): ``(L, N)`` bool, the written ones.
            epoch (int): the epoch starting (added to the seed).

        Returns:
            int: the K used.
        """
        k = self.num_prototypes or max(int(mask.sum(1).max()), 1)
        if is_distributed() and get_rank() != 0:
            # Only rank 0 clusters; the others receive its centres (the
            # banks are identical, so the k-means would be too).
            num_classes, _, dim = entries.shape
            centers = entries.new_zeros(
                (num_classes, k, dim),
                dtype=torch.promote_types(entries.dtype, torch.float32))
            valid = mask.new_zeros((num_classes, k), dtype=torch.bool)
        else:
            centers, valid, _ = batched_kmeans(
                entries,
                mask,
                k,
                num_iters=self.num_iters,
                n_init=self.num_init,
                seed=self.seed + epoch)
        if is_distributed():
            broadcast(centers, 0)
            broadcast(valid, 0)
        self.set_prototypes(centers, valid)
        return k

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
        self._has_prototypes = bool(self.prototype_valid.any())

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
            ``(N, h*w, L*K)`` in float32 (float64 for float64 features;
            None when no prototype is valid). Eq. 7-8 are computed in
            float32 under autocast too.

        Raises:
            ValueError: the channels of ``feats`` and of the prototypes
                differ.
        """
        if not self.has_prototypes:
            out = torch.zeros_like(feats)  # no prototypes yet: F' = 0
            return (out, None) if return_weights else out
        n, d, h, w = feats.shape
        if self.prototypes.shape[2] != d:
            raise ValueError(
                f'PrototypeAggregation: features have {d} channels but the '
                f'prototypes have {self.prototypes.shape[2]}')
        # Eq. 7-8 in float32 whatever the autocast: the logits F Q^T grow
        # with D times the squared feature scale and overflow float16 (at
        # D = 4096, RMS 6 already), and a row with an inf is NaN after the
        # softmax.
        dtype = torch.promote_types(feats.dtype, torch.float32)
        with torch.autocast(device_type=feats.device.type, enabled=False):
            protos = self.prototypes.flatten(0, 1).to(dtype)  # (L*K, D)
            valid = self.prototype_valid.flatten()
            pixels = feats.to(dtype).flatten(2).transpose(1, 2)  # (N, hw, D)
            logits = self.scale * (pixels @ protos.t())  # (N, hw, L*K)
            logits = logits.masked_fill(~valid, float('-inf'))
            weights = logits.softmax(dim=-1)  # Eq. 7: S = softmax_row(F Q^T)
            out = weights @ protos  # Eq. 8: F' = S Q
        out = out.transpose(1, 2).reshape(n, d, h, w).to(feats.dtype)
        return (out, weights) if return_weights else out
