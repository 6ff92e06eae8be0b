"""Pseudo regions (Eq. 2): one masked-average-pooled feature per image and tag.

.. code:: text

    P (N, L, h, w) --tags y--> P_l of each tagged (image, class)  (R, h, w)
                               M_l = 1(P_l > mean(P_l))            (Eq. 2)
    F (N, D, h, w) ----------> f_l = sum(M_l * F) / sum(M_l)       (R, D)

The regions of a batch are ordered by image, then by class, which is the
order of ``img_labels.nonzero()``. The tags are read by the host once (the
number of regions sets every shape downstream); nothing else waits for the
device. The work is one batched matrix product of
the per-image stacked masks ``(N, T, h*w)`` with the features
``(N, h*w, D)``, where T is the largest number of tags of one image; no copy
of the features is made per region.
"""
from typing import Tuple

import numpy as np
import torch
from torch import Tensor


def region_masks(cams: Tensor) -> Tensor:
    """The binary pseudo-region masks of class activation maps (Eq. 2).

    ``M_l = 1(P_l > mean(P_l))``, the mean taken over the spatial map of one
    image and class. A map whose mask is empty (every value equal to the
    mean, e.g. an all-zero or constant map, or a map with NaNs) falls back to
    the full map, so that ``f_l`` is the plain spatial average of F instead
    of 0/0.

    Args:
        cams (Tensor): maps ``(..., h, w)``; no gradient is taken through
            the threshold.

    Returns:
        Tensor: the float masks ``(..., h, w)`` with values in {0, 1}.
    """
    cams = cams.detach()
    mean = cams.mean(dim=(-2, -1), keepdim=True)
    masks = (cams > mean).to(cams.dtype)  # Eq. 2: M_l = 1(P_l > mean(P_l))
    empty = masks.sum(dim=(-2, -1), keepdim=True) == 0
    return torch.where(empty, torch.ones_like(masks), masks)


def masked_region_features(
        feats: Tensor, cams: Tensor,
        img_labels: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """The pseudo-region features of every tagged class of every image (Eq. 2).

    For each image ``n`` and each class ``l`` with ``img_labels[n, l] = 1``,
    ``f_l = sum(M_l * F_n) / sum(M_l)`` with ``M_l = 1(P_l > mean(P_l))``
    (see :func:`region_masks` for the empty-mask guard). Gradients flow into
    ``feats`` only; the masks are constants.

    Args:
        feats (Tensor): backbone features F, ``(N, D, h, w)``.
        cams (Tensor): coarse class activation maps P, ``(N, L, h, w)``, at
            the same spatial size as ``feats``.
        img_labels (Tensor): multi-hot image tags y, ``(N, L)`` (bool, int or
            float; a value > 0.5 counts as tagged).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``region_feats (R, D)`` in the dtype of
        ``feats``, ``region_classes (R,)`` int64 (0-based tag index) and
        ``region_batch_idx (R,)`` int64 (the image of each region in the
        batch), R being the number of tags in the batch; ordered by image,
        then class.

    Raises:
        ValueError: the shapes of ``feats``, ``cams`` and ``img_labels`` do
            not agree.
    """
    if feats.dim() != 4 or cams.dim() != 4 or img_labels.dim() != 2:
        raise ValueError(
            'masked_region_features expects feats (N, D, h, w), cams '
            f'(N, L, h, w) and img_labels (N, L); got {tuple(feats.shape)}, '
            f'{tuple(cams.shape)} and {tuple(img_labels.shape)}')
    n, d, h, w = feats.shape
    if cams.shape[0] != n or cams.shape[2:] != feats.shape[2:]:
        raise ValueError(
            f'cams {tuple(cams.shape)} must have the batch size and spatial '
            f'size of feats {tuple(feats.shape)}; resize the CAMs to the '
            'feature map first')
    if img_labels.shape != cams.shape[:2]:
        raise ValueError(f'img_labels {tuple(img_labels.shape)} must be '
                         f'(N, L) = {tuple(cams.shape[:2])}')
    if img_labels.is_floating_point():
        tagged = img_labels > 0.5
    else:
        tagged = img_labels != 0
    # The number of regions sets the shapes of everything downstream (and
    # of the mixup draws, Eq. 5), so the host needs it: the tags are read
    # once (the step's one host read of Eq. 2; none when they are on the
    # CPU), the indices made there and sent without waiting.
    host = tagged.cpu().numpy()
    rows, cols = np.nonzero(host)  # (R,) each, by image then class
    num_regions = rows.size
    tags_per_image = host.sum(axis=1)
    # The rank of each region among its image's tags gives its row in the
    # per-image stack of masks.
    first = np.cumsum(tags_per_image) - tags_per_image
    rank = np.arange(num_regions) - first[rows]
    max_tags = int(tags_per_image.max()) if n else 0
    to_device = dict(device=feats.device, non_blocking=True)
    region_batch_idx = torch.from_numpy(rows).long().to(**to_device)
    region_classes = torch.from_numpy(cols).long().to(**to_device)
    rank = torch.from_numpy(rank).long().to(**to_device)
    if num_regions == 0:
        return (feats.new_zeros((0, d)) + feats.sum() * 0,
                region_classes.clone(), region_batch_idx.clone())

    masks = region_masks(cams[region_batch_idx, region_classes])  # (R, h, w)
    weights = masks.flatten(1)
    weights = weights / weights.sum(dim=1, keepdim=True)
    stacked = feats.new_zeros((n, max_tags, h * w))
    stacked[region_batch_idx, rank] = weights.to(feats.dtype)
    # Eq. 2: f_l = sum(M_l * F) / sum(M_l), all regions in one bmm.
    pooled = torch.bmm(stacked, feats.flatten(2).transpose(1, 2))
    region_feats = pooled[region_batch_idx, rank]
    return region_feats, region_classes, region_batch_idx
