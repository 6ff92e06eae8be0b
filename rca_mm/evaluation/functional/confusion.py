"""One confusion matrix, three mIoU protocols.

Pseudo labels mark uncertain pixels 255. Papers score them in three ways and
mix the numbers, so all come from the same matrix here:

- ``full``: a pixel the pseudo label leaves at 255 is a miss (it counts in
  the ground-truth class's union, never in an intersection). This is what
  mmseg's ``IoUMetric`` computes when fed the pseudo label as it is (it
  ignores pixels by the ground truth only).
- ``confident``: pixels the pseudo label marks 255 are left out entirely,
  as in EPS's ``evaluate_png.py`` (``mask = ... & (label_pred <
  num_classes)``), which RCA's reported pseudo-label mIoU follows.
- ``irn``: a pixel the pseudo label leaves at 255 counts as background, as
  in IRN's ``eval_sem_seg.py`` (``cls_labels[cls_labels == 255] = 0``
  before chainercv's confusion matrix).

The matrix has one more column than rows: rows are ground-truth classes
``0..C-1`` (ground-truth 255 dropped), columns are predicted classes
``0..C-1`` and, last, "predicted ignore". Keeping that column is what lets
one matrix give every protocol and the coverage.
"""
from typing import Dict

import numpy as np

PROTOCOLS = ('full', 'confident', 'irn')


def confusion_matrix(pred: np.ndarray,
                     gt: np.ndarray,
                     num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """Count (ground truth, prediction) pairs of one label map.

    Args:
        pred (np.ndarray): (H, W) predicted labels in ``[0, num_classes)`` or
            ``ignore_index``.
        gt (np.ndarray): (H, W) ground-truth labels in ``[0, num_classes)``
            or ``ignore_index`` (those pixels are not counted).
        num_classes (int): C, background included.
        ignore_index (int): the "no label" value of both maps. Default: 255.

    Returns:
        np.ndarray: (C, C + 1) int64; entry ``[g, p]`` counts pixels of
        ground truth ``g`` predicted ``p``, column ``C`` counts those
        predicted ``ignore_index``.

    Raises:
        ValueError: the shapes differ or a map holds another value.
    """
    pred = np.asarray(pred).astype(np.int64, copy=False)
    gt = np.asarray(gt).astype(np.int64, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f'confusion_matrix: prediction of shape {pred.shape} '
                         f'but ground truth of shape {gt.shape}')
    # Kept although LoadWSSSAnnotations checks every label map it loads:
    # predictions and callers' own arrays do not pass through it, and an
    # out-of-range value would not fail in np.bincount but be counted,
    # silently, in another (ground truth, prediction) cell.
    for what, labels in (('prediction', pred), ('ground truth', gt)):
        bad = (labels < 0) | ((labels >= num_classes) &
                              (labels != ignore_index))
        if bad.any():
            raise ValueError(
                f'confusion_matrix: the {what} holds {np.unique(labels[bad])}'
                f', outside [0, {num_classes}) and not {ignore_index}')
    keep = gt != ignore_index
    pred = np.where(pred[keep] == ignore_index, num_classes, pred[keep])
    flat = gt[keep] * (num_classes + 1) + pred
    return np.bincount(
        flat, minlength=num_classes * (num_classes + 1)).reshape(
            num_classes, num_classes + 1).astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den`` is 0 (a class absent from both
    maps), as mmseg's ``IoUMetric``; ``np.nanmean`` then skips it."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def iou_from_confusion(cm: np.ndarray, protocol: str = 'full') -> np.ndarray:
    """Per-class IoU, ``TP / (GT + P - TP)``, under one protocol.

    Args:
        cm (np.ndarray): (C, C + 1) matrix of :func:`confusion_matrix`
            (summed over images).
        protocol (str): ``'full'`` (predicted 255 is a miss),
            ``'confident'`` (predicted 255 is left out) or ``'irn'``
            (predicted 255 is background). Default: 'full'.

    Returns:
        np.ndarray: (C,) float64, NaN for a class in neither map.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'iou_from_confusion: protocol must be one of '
                         f'{PROTOCOLS}, got {protocol!r}')
    cm = _check_matrix(cm)
    if protocol == 'irn':
        # The "predicted ignore" column becomes predicted background; the
        # matrix is then square and every GT pixel has a prediction.
        cm = np.concatenate([cm[:, :1] + cm[:, -1:], cm[:, 1:-1]], axis=1)
        tp = np.diag(cm).astype(np.float64)
        return _divide(tp, cm.sum(axis=1) + cm.sum(axis=0) - tp)
    tp = np.diag(cm[:, :-1]).astype(np.float64)
    predicted = cm[:, :-1].sum(axis=0)
    # full: the GT area includes pixels predicted 255; confident: it does not.
    gt_area = cm.sum(axis=1) if protocol == 'full' else cm[:, :-1].sum(axis=1)
    return _divide(tp, gt_area + predicted - tp)


def summarize_confusion(cm: np.ndarray) -> Dict[str, np.ndarray]:
    """All scores of the pseudo-label report from one matrix.

    Args:
        cm (np.ndarray): (C, C + 1) matrix of :func:`confusion_matrix`.

    Returns:
        dict: fractions in [0, 1] (NaN where undefined), per class (C,):
        ``iou_full``, ``iou_confident``, ``iou_irn``, ``precision`` (TP
        over pixels predicted as the class; the same under ``full`` and
        ``confident``), ``recall_full`` (TP over the class's GT pixels),
        ``recall_confident`` (TP over its GT pixels that got a class) and
        ``coverage`` (share of its GT pixels that got a class); and scalars
        ``mIoU_full``, ``mIoU_confident``, ``mIoU_irn`` (NaN-means over
        classes) and ``coverage_all`` (share of all GT-labelled pixels that
        got a class).
    """
    cm = _check_matrix(cm)
    tp = np.diag(cm[:, :-1]).astype(np.float64)
    gt_all = cm.sum(axis=1)
    gt_confident = cm[:, :-1].sum(axis=1)
    out = dict(
        iou_full=iou_from_confusion(cm, 'full'),
        iou_confident=iou_from_confusion(cm, 'confident'),
        iou_irn=iou_from_confusion(cm, 'irn'),
        precision=_divide(tp, cm[:, :-1].sum(axis=0)),
        recall_full=_divide(tp, gt_all),
        recall_confident=_divide(tp, gt_confident),
        coverage=_divide(gt_confident, gt_all))
    out['mIoU_full'] = _nanmean(out['iou_full'])
    out['mIoU_confident'] = _nanmean(out['iou_confident'])
    out['mIoU_irn'] = _nanmean(out['iou_irn'])
    out['coverage_all'] = _divide(
        np.array(gt_confident.sum()), np.array(gt_all.sum()))[()]
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean over the defined entries; NaN (no warning) when there are none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float('nan')


def _check_matrix(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[1] != cm.shape[0] + 1:
        raise ValueError('expected a (C, C + 1) confusion matrix (last column'
                         f' = predicted ignore), got shape {cm.shape}')
    return cm
