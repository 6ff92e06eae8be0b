"""Pseudo labels from CAMs: the recipes of the WSSS papers, in numpy.

Every recipe takes the CAMs of the image's tagged classes only, ``cams``
(K, H, W) in [0, 1] (max-normalised per class), with ``class_ids`` (K,) their
label-map ids (tag ``j`` is class ``j + 1``), and returns an (H, W) uint8
label map: 0 background, ``class_ids`` foreground, 255 ignore.

- :func:`threshold_recipe`: background where no CAM reaches a constant
  (PSA / IRN / EPS ``infer.py``, ``--thr 0.20``), or where an explicit
  background map wins (EPS's saliency-like ``pred_bg``).
- :func:`saliency_recipe`: background from an off-the-shelf saliency map and
  three ignore rules, the OAA / RCA label scripts (OAA-PyTorch
  ``gen_gt.py``, RCA ``gen_labels.py``).
- :func:`crf_refine_cams`: PSA's dense-CRF refinement of the CAMs with the
  background score ``(1 - max CAM) ** alpha``, which RCA applies before the
  saliency recipe.
"""
from typing import Optional

import numpy as np

IGNORE = 255


def _check_cams(cams: np.ndarray, class_ids: np.ndarray) -> tuple:
    cams = np.asarray(cams, dtype=np.float32)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != class_ids.size:
        raise ValueError(
            f'expected (K, H, W) CAMs for K = {class_ids.size} class ids, got '
            f'CAMs of shape {cams.shape}')
    if class_ids.size and (class_ids.min() < 1 or class_ids.max() >= IGNORE):
        raise ValueError('class ids are label-map ids of foreground classes, '
                         f'1..254, got {class_ids.tolist()}')
    return cams, class_ids


def _argmax_labels(scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Label of the highest of (background, class 1, ..., class K) scores;
    ties go to the earlier channel (background first), as ``np.argmax``."""
    lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
    return lookup[scores.argmax(axis=0)]


def tagged_classes(cams: np.ndarray,
                   tags: Optional[np.ndarray] = None) -> np.ndarray:
    """The indices (0..L-1) of an image's tagged classes, whose CAMs a
    recipe gets: the classes tagged in ``tags`` (> 0.5), else those with a
    non-zero CAM (the classifier zeroes the others).

    Args:
        cams (np.ndarray): (L, H, W) CAMs of all classes.
        tags (np.ndarray, optional): (L,) the image's tags
            (``gt_img_labels``). Default: None.

    Returns:
        np.ndarray: the indices; their label-map ids are one more.
    """
    if tags is None:
        return np.flatnonzero(cams.reshape(len(cams), -1).max(axis=1) > 0)
    tags = np.asarray(tags).reshape(-1)
    if tags.shape[0] != cams.shape[0]:
        raise ValueError(f'{tags.shape[0]} image tags but {cams.shape[0]} '
                         'CAMs')
    return np.flatnonzero(tags > 0.5)


def threshold_recipe(cams: np.ndarray,
                     class_ids: np.ndarray,
                     *,
                     bg_threshold: float = 0.2,
                     bg_map: Optional[np.ndarray] = None) -> np.ndarray:
    """Background by a constant threshold (or a background map), then argmax.

    Args:
        cams (np.ndarray): (K, H, W) CAMs of the tagged classes, in [0, 1].
        class_ids (np.ndarray): (K,) their label-map ids.
        bg_threshold (float): the background score of every pixel: a pixel
            is background unless some CAM exceeds it. Default: 0.2 (EPS
            ``infer.py --thr``; IRN uses 0.15 for its CAM evaluation).
        bg_map (np.ndarray, optional): (H, W) background score in [0, 1]
            (EPS's ``pred_bg``) used instead of the constant. Default: None.

    Returns:
        np.ndarray: (H, W) uint8 labels; no pixel is 255.
    """
    cams, class_ids = _check_cams(cams, class_ids)
    if bg_map is None:
        background = np.full((1, ) + cams.shape[1:], bg_threshold, np.float32)
    else:
        background = np.asarray(bg_map, np.float32).reshape(1, -1)
        if background.size != np.prod(cams.shape[1:]):
            raise ValueError(f'bg_map of shape {np.shape(bg_map)} does not '
                             f'match CAMs of shape {cams.shape}')
        background = background.reshape((1, ) + cams.shape[1:])
    return _argmax_labels(np.concatenate([background, cams]), class_ids)


def saliency_recipe(cams: np.ndarray,
                    class_ids: np.ndarray,
                    saliency: np.ndarray,
                    *,
                    conflict_threshold: float = 0.9,
                    saliency_bg_threshold: float = 32 / 255,
                    cam_confident_threshold: float = 0.8,
                    cam_floor: float = 0.,
                    min_fg_ratio: float = 0.01) -> np.ndarray:
    """Saliency as background cue, with OAA's / RCA's ignore rules.

    The rule of OAA-PyTorch ``gen_gt.py`` and RCA ``gen_labels.py``
    (re-written vectorised; the scripts work on 0-255 saliency, here it is
    in [0, 1]):

    1. scores: background ``1 - saliency``, class ``c`` its CAM (CAM values
       below ``cam_floor`` set to 0; OAA uses 0.3, RCA none);
    2. label = argmax of the scores;
    3. a pixel where more than one score (background included) exceeds
       ``conflict_threshold`` is 255 (claimed confidently by several);
    4. a pixel labelled background that is not confidently background, i.e.
       saliency >= ``saliency_bg_threshold`` or some CAM >
       ``cam_confident_threshold``, is 255;
    5. if fewer than ``min_fg_ratio`` of the pixels got a foreground class,
       the whole image is 255.

    Args:
        cams (np.ndarray): (K, H, W) CAMs of the tagged classes, in [0, 1]
            (possibly refined by :func:`crf_refine_cams`).
        class_ids (np.ndarray): (K,) their label-map ids.
        saliency (np.ndarray): (H, W) saliency in [0, 1].
        conflict_threshold (float): step 3. Default: 0.9 (OAA, RCA).
        saliency_bg_threshold (float): step 4. Default: 32 / 255 (OAA, RCA).
        cam_confident_threshold (float): step 4. Default: 0.8 (OAA, RCA).
        cam_floor (float): step 1. Default: 0 (RCA; OAA: 0.3).
        min_fg_ratio (float): step 5. Default: 0.01 (OAA, RCA).

    Returns:
        np.ndarray: (H, W) uint8 labels with 255 = ignore.
    """
    cams, class_ids = _check_cams(cams, class_ids)
    saliency = np.asarray(saliency, np.float32)
    if saliency.shape != cams.shape[1:]:
        raise ValueError(f'saliency of shape {saliency.shape} does not match '
                         f'CAMs of shape {cams.shape}')
    # Thresholds in the maps' float32, so that a saliency of exactly 32/255
    # compares as the scripts' integer 32 >= 32.
    sal_thr = np.float32(saliency_bg_threshold)
    floored = np.where(cams < np.float32(cam_floor), np.float32(0), cams)
    scores = np.concatenate([1 - saliency[None], floored])  # step 1
    labels = _argmax_labels(scores, class_ids)  # step 2
    confident = (scores > np.float32(conflict_threshold)).sum(axis=0)
    labels[confident > 1] = IGNORE  # step 3
    unsure_bg = (saliency >= sal_thr) | (
        cams > np.float32(cam_confident_threshold)).any(axis=0)
    labels[(labels == 0) & unsure_bg] = IGNORE  # step 4
    foreground = ((labels > 0) & (labels < IGNORE)).sum()
    if foreground < min_fg_ratio * labels.size:  # step 5
        labels[...] = IGNORE
    return labels


def crf_refine_cams(image: np.ndarray,
                    cams: np.ndarray,
                    *,
                    alpha: float = 4.,
                    num_iters: int = 10,
                    gaussian_sxy: float = 3.,
                    gaussian_compat: float = 3.,
                    bilateral_sxy: float = 80.,
                    bilateral_srgb: float = 13.,
                    bilateral_compat: float = 10.) -> np.ndarray:
    """PSA's CRF refinement of the CAMs (``_crf_with_alpha``).

    The background score is ``(1 - max_c CAM_c) ** alpha``; the background
    and class scores, floored at ``PROB_FLOOR`` and divided by their sum (a
    per-pixel constant in the CRF energy, so the same CRF as PSA's raw
    scores but for floored scores), go through the dense CRF; the class
    marginals are returned (the background marginal is dropped: RCA takes
    background from saliency).

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB image.
        cams (np.ndarray): (K, H, W) CAMs of the tagged classes, in [0, 1].
        alpha (float): background exponent. Default: 4 (PSA, RCA).
        num_iters (int): mean-field iterations. Default: 10 (PSA).
        gaussian_sxy (float): Default: 3 (PSA).
        gaussian_compat (float): Default: 3 (PSA).
        bilateral_sxy (float): Default: 80 (PSA).
        bilateral_srgb (float): Default: 13 (PSA).
        bilateral_compat (float): Default: 10 (PSA).

    Returns:
        np.ndarray: (K, H, W) float32 refined class marginals; the input
        when K = 0.
    """
    # Imported here: rca_mm.models is heavy, and the threshold sweep and the
    # other recipes do not need it.
    from rca_mm.models.postprocess.dense_crf import PROB_FLOOR, dense_crf
    cams = np.asarray(cams, np.float32)
    if cams.shape[0] == 0:
        return cams
    background = (1 - cams.max(axis=0, keepdims=True))**alpha
    scores = np.clip(np.concatenate([background, cams]), PROB_FLOOR, None)
    probs = scores / scores.sum(axis=0, keepdims=True)
    marginals = dense_crf(
        image,
        probs.astype(np.float32),
        num_iters=num_iters,
        gaussian_sxy=gaussian_sxy,
        gaussian_compat=gaussian_compat,
        bilateral_sxy=bilateral_sxy,
        bilateral_srgb=bilateral_srgb,
        bilateral_compat=bilateral_compat)
    return marginals[1:]
