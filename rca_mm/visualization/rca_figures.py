"""The maps of the RCA paper's Fig. 3 and Fig. 4, and their drawing.

.. code:: text

    rca_maps(model, inputs)          one scale, no flip, eval mode
      F = head.features(backbone(inputs))
      P = head.classify(F)                            (Eq. 1)
      S = head.aggregation(F, return_weights=True)    (Eq. 7)  (N, L, K, h, w)
      O = head.classify_o(F)                          (Eq. 8-10)
    cams_at(model, raw, size)        the activation of model.test_cfg,
                                     resize, foreground, max-normalise

    Fig. 3: per image, GT and S of chosen prototypes (affinity_panels)
    Fig. 4: per (image, tag): baseline CAM | P | O (comparison_panels)

Both figures are rows of titled panels drawn by
:meth:`WSSSLocalVisualizer.draw_panels`; ``tools/analysis_tools/
draw_rca_figures.py`` runs them on trained checkpoints.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rca_mm.models.heads import RCAHead
from rca_mm.models.utils import max_normalize
from .wsss_local_visualizer import Panel, WSSSLocalVisualizer


@torch.no_grad()
def rca_maps(model, inputs: Tensor) -> Dict[str, Tensor]:
    """P, O and the affinity S of an RCA classifier on one batch.

    Args:
        model (CAMClassifier): with an ``RCAHead`` that aggregates
            (``use_rsa=True``) and has prototypes (a trained checkpoint).
        inputs (Tensor): ``(N, 3, H, W)`` preprocessed images.

    Returns:
        dict: raw maps at feature resolution: ``p`` (Eq. 1) and ``o``
        (Eq. 10), ``(N, L[+1], h, w)``; ``affinity``, S of Eq. 7 as
        ``(N, L, K, h, w)`` (zero for invalid prototypes); ``valid``,
        ``(L, K)`` bool.

    Raises:
        ValueError: the head is not an aggregating ``RCAHead`` or has no
            prototypes.
    """
    head = model.head
    if not isinstance(head, RCAHead) or not head.use_rsa:
        raise ValueError(
            "model.head must be an RCAHead with use_rsa=True (O and S of "
            f'Eq. 7-10), got {type(head).__name__}')
    aggregation = head.aggregation
    if not aggregation.has_prototypes:
        raise ValueError(
            'model.head.aggregation has no prototypes: load a checkpoint '
            'trained with RCAHook (k-means at epoch starts)')
    feats = head.features(model.extract_feat(inputs))  # F
    n, _, h, w = feats.shape
    _, weights = aggregation(feats, return_weights=True)  # S, Eq. 7
    num_classes, num_protos = aggregation.prototype_valid.shape
    affinity = weights.transpose(1, 2).reshape(n, num_classes, num_protos, h,
                                               w)
    return dict(
        p=head.classify(feats),  # Eq. 1
        o=head.classify_o(feats),  # Eq. 8-10
        affinity=affinity,
        valid=aggregation.prototype_valid)


@torch.no_grad()
def baseline_maps(model, inputs: Tensor) -> Tensor:
    """The final raw maps of any CAM classifier, ``(N, L[+1], h, w)``."""
    return model.head.predict_cams(model.extract_feat(inputs))


def cams_at(model, raw: Tensor, size: Tuple[int, int]) -> Tensor:
    """Raw maps as ``CAMClassifier.predict`` makes CAMs of one scale.

    The model's ``test_cfg.activation`` (ReLU, or softmax over the L+1
    maps), bilinear resizing to ``size``, the L foreground maps, and a
    max-normalisation per class.

    Args:
        model (CAMClassifier): the classifier the maps come from.
        raw (Tensor): ``(N, L[+1], h, w)``.
        size (tuple[int, int]): the image's ``(H, W)``.

    Returns:
        Tensor: ``(N, L, H, W)`` in [0, 1].
    """
    maps = raw.softmax(dim=1) if model.activation == 'softmax' \
        else F.relu(raw)
    maps = F.interpolate(
        maps, size=size, mode='bilinear',
        align_corners=False)[:, :model.num_classes]
    return max_normalize(maps)


def select_prototypes(affinity: Tensor, valid: Tensor,
                      class_idx: Optional[Sequence[int]],
                      num: int) -> List[Tuple[int, int]]:
    """The valid prototypes with the largest total affinity over the image.

    Args:
        affinity (Tensor): ``(L, K, h, w)`` S of one image.
        valid (Tensor): ``(L, K)`` bool.
        class_idx (Sequence[int], optional): classes (0-based), e.g. the
            image's tags: ``num`` prototypes of each. None: the ``num``
            strongest of any class.
        num (int): prototypes per class, or in all.

    Returns:
        list[tuple[int, int]]: ``(class, prototype)`` pairs, strongest first
        (class by class with ``class_idx``).
    """
    total = affinity.flatten(2).sum(-1).masked_fill(~valid, -1.0)
    if class_idx is None:
        order = total.flatten().argsort(descending=True)[:num]
        k = total.shape[1]
        return [(int(j) // k, int(j) % k) for j in order if valid.flatten()[j]]
    chosen = []
    for c in class_idx:
        order = total[c].argsort(descending=True)
        chosen += [(int(c), int(k)) for k in order[:num] if valid[c, k]]
    return chosen


def affinity_panels(visualizer: WSSSLocalVisualizer,
                    image: np.ndarray,
                    affinity: Tensor,
                    prototypes: Sequence[Tuple[int, int]],
                    gt: Optional[np.ndarray] = None) -> List[Panel]:
    """One row of Fig. 3: the image, the GT, then S of each prototype over
    it.

    Each map is upsampled to the image and coloured on S's own scale,
    jet's ends at 0 and 1, so the maps compare by colour; its title gives
    the class, the prototype's index in it and, after the colon, the map's
    largest S.

    Args:
        visualizer (WSSSLocalVisualizer): draws the heatmaps; its
            ``dataset_meta`` names the classes.
        image (np.ndarray): (H, W, 3) uint8 RGB.
        affinity (Tensor): ``(L, K, h, w)`` S of this image.
        prototypes (Sequence[tuple[int, int]]): ``(class, prototype)``
            pairs to draw.
        gt (np.ndarray, optional): (H, W) ground truth. Default: None.

    Returns:
        list[tuple]: ``(title, panel)`` pairs.
    """
    classes = visualizer.dataset_meta.get('classes')
    panels = [('image', image)]
    if gt is not None:
        panels.append(('GT', visualizer.draw_label_map(image, gt)))
    for c, k in prototypes:
        heat = affinity[c, k].float().cpu().numpy()
        title = f'{_class_name(classes, c)} q{k}: {heat.max():.2f}'
        panels.append((title, visualizer.draw_heatmap(heat, image,
                                                      (0.0, 1.0))))
    return panels


def comparison_panels(visualizer: WSSSLocalVisualizer,
                      image: np.ndarray,
                      class_idx: int,
                      cams: Sequence[Tuple[str, Tensor]],
                      gt: Optional[np.ndarray] = None) -> List[Panel]:
    """One row of Fig. 4: the image, the GT, and each method's CAM of one
    class.

    Args:
        visualizer (WSSSLocalVisualizer): draws the panels.
        image (np.ndarray): (H, W, 3) uint8 RGB.
        class_idx (int): the class (0-based).
        cams (Sequence[tuple[str, Tensor]]): ``(title, (L, H, W) CAMs)``
            per method, e.g. the baseline, RCA's P and RCA's O.
        gt (np.ndarray, optional): (H, W) ground truth. Default: None.

    Returns:
        list[tuple]: ``(title, panel)`` pairs.
    """
    classes = visualizer.dataset_meta.get('classes')
    panels = [(f'image ({_class_name(classes, class_idx)})', image)]
    if gt is not None:
        panels.append(('GT', visualizer.draw_label_map(image, gt, False)))
    for title, maps in cams:
        panels.append(
            (title,
             visualizer.draw_heatmap(maps[class_idx].float().cpu().numpy(),
                                     image)))
    return panels


def _class_name(classes: Optional[Sequence[str]], class_idx: int) -> str:
    """The name of foreground class ``class_idx`` (label ``class_idx+1``)."""
    if classes is None:
        return str(class_idx + 1)
    return str(classes[class_idx + 1])


__all__ = [
    'rca_maps', 'baseline_maps', 'cams_at', 'select_prototypes',
    'affinity_panels', 'comparison_panels'
]
