import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric

from rca_mm.evaluation.functional import (confusion_matrix, iou_from_confusion,
                                          summarize_confusion)

# A hand-made 4x4 example (255 = ignore in both maps).
GT = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 2, 2]])
PRED = np.array([[0, 255, 1, 1], [0, 0, 255, 1], [2, 1, 0, 2],
                 [255, 255, 2, 0]])


def test_confusion_matrix_hand_example():
    cm = confusion_matrix(PRED, GT, num_classes=3)
    # rows: GT 0, 1, 2; columns: predicted 0, 1, 2, 255.
    expected = np.array([[3, 0, 0, 1], [0, 3, 0, 1], [1, 1, 2, 2]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64


def test_confident_protocol_hand_computed():
    cm = confusion_matrix(PRED, GT, num_classes=3)
    # Leaving out the 4 pixels predicted 255: GT areas 3, 3, 4, predicted
    # areas 4, 4, 2, TP 3, 3, 2.
    np.testing.assert_allclose(
        iou_from_confusion(cm, 'confident'), [3 / 4, 3 / 4, 2 / 4])
    # Counting them as misses: GT areas 4, 4, 6.
    np.testing.assert_allclose(
        iou_from_confusion(cm, 'full'), [3 / 5, 3 / 5, 2 / 6])
    scores = summarize_confusion(cm)
    assert scores['mIoU_confident'] == pytest.approx(2 / 3)
    assert scores['mIoU_full'] == pytest.approx((0.6 + 0.6 + 1 / 3) / 3)
    assert scores['coverage_all'] == pytest.approx(10 / 14)
    np.testing.assert_allclose(scores['precision'], [3 / 4, 3 / 4, 1])
    np.testing.assert_allclose(scores['recall_full'], [3 / 4, 3 / 4, 2 / 6])
    np.testing.assert_allclose(scores['recall_confident'], [1, 1, 2 / 4])
    np.testing.assert_allclose(scores['coverage'], [3 / 4, 3 / 4, 4 / 6])


def test_irn_protocol_hand_computed():
    """IRN's eval_sem_seg.py sets predicted 255 to background (0)."""
    cm = confusion_matrix(PRED, GT, num_classes=3)
    # The 4 pixels predicted 255 (GT 0, 1, 2, 2) become predicted 0: GT
    # areas 4, 4, 6, predicted areas 4 + 4, 4, 2, TP 3 + 1, 3, 2.
    np.testing.assert_allclose(
        iou_from_confusion(cm, 'irn'), [4 / 8, 3 / 5, 2 / 6])
    scores = summarize_confusion(cm)
    np.testing.assert_allclose(scores['iou_irn'], [4 / 8, 3 / 5, 2 / 6])
    assert scores['mIoU_irn'] == pytest.approx((1 / 2 + 3 / 5 + 1 / 3) / 3)
    # The other protocols are not changed by it.
    assert scores['mIoU_confident'] == pytest.approx(2 / 3)


def _mmseg_iou(preds, gts, num_classes):
    """Per-class IoU, precision and recall from mmseg's IoUMetric."""
    areas = [
        IoUMetric.intersect_and_union(
            torch.from_numpy(p), torch.from_numpy(g), num_classes, 255)
        for p, g in zip(preds, gts)
    ]
    totals = [sum(a[i] for a in areas) for i in range(4)]
    return IoUMetric.total_area_to_metrics(
        *totals, metrics=['mIoU', 'mFscore'])


@pytest.mark.parametrize('miss_value', [255, 5])
def test_full_protocol_matches_mmseg_iou_metric(miss_value):
    """IoUMetric ignores by the ground truth only; a prediction outside
    [0, C) (255 as it is, or C = 5) matches no class, i.e. is a miss."""
    rng = np.random.default_rng(0)
    num_classes = 5  # class 4 appears in neither map: NaN in both
    gts, preds = [], []
    for _ in range(3):
        gt = rng.integers(0, 4, (7, 9))
        gt[rng.random(gt.shape) < 0.15] = 255
        pred = np.where(
            rng.random(gt.shape) < 0.6, gt, rng.integers(0, 4, gt.shape))
        pred[rng.random(gt.shape) < 0.2] = 255
        gts.append(gt)
        preds.append(pred)
    ours = sum(confusion_matrix(p, g, num_classes) for p, g in zip(preds, gts))
    mm_preds = [np.where(p == 255, miss_value, p) for p in preds]
    ref = _mmseg_iou(mm_preds, gts, num_classes)
    scores = summarize_confusion(ours)
    np.testing.assert_allclose(
        scores['iou_full'], ref['IoU'], atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(
        scores['precision'], ref['Precision'], atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(
        scores['recall_full'], ref['Recall'], atol=1e-6, equal_nan=True)
    assert np.isnan(scores['iou_full'][4])
    assert scores['mIoU_full'] == pytest.approx(
        np.nanmean(ref['IoU']), abs=1e-6)
    # The confident protocol is IoUMetric on the pixels predicted != 255.
    conf_gts = [np.where(p == 255, 255, g) for p, g in zip(preds, gts)]
    ref_conf = _mmseg_iou(preds, conf_gts, num_classes)
    np.testing.assert_allclose(
        scores['iou_confident'], ref_conf['IoU'], atol=1e-6, equal_nan=True)
    # The IRN protocol is IoUMetric on the pseudo labels with 255 -> 0.
    ref_irn = _mmseg_iou([np.where(p == 255, 0, p) for p in preds], gts,
                         num_classes)
    np.testing.assert_allclose(
        scores['iou_irn'], ref_irn['IoU'], atol=1e-6, equal_nan=True)
    assert scores['mIoU_irn'] == pytest.approx(
        np.nanmean(ref_irn['IoU']), abs=1e-6)
    # Only the background differs from the full protocol.
    np.testing.assert_array_equal(scores['iou_irn'][1:],
                                  scores['iou_full'][1:])
    assert scores['iou_irn'][0] != pytest.approx(scores['iou_full'][0])


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match='shape'):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match=r'prediction holds \[7\]'):
        confusion_matrix(np.full((2, 2), 7), np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match='ground truth holds'):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), -1), 3)
    with pytest.raises(ValueError, match='protocol'):
        iou_from_confusion(np.zeros((3, 4)), 'strict')
    with pytest.raises(ValueError, match=r'\(C, C \+ 1\)'):
        iou_from_confusion(np.zeros((3, 3)))
