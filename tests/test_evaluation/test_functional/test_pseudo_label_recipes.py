import importlib

import numpy as np
import pytest

from rca_mm.evaluation.functional import (crf_refine_cams, saliency_recipe,
                                          threshold_recipe)

# The module (the package re-exports a function of the same name).
dense_crf_module = importlib.import_module(
    'rca_mm.models.postprocess.dense_crf')

# Threshold recipe: two tagged classes, label-map ids 3 and 7.
CAMS_T = np.array(
    [[[0.1, 0.5, 0.9], [0.3, 0.2, 0.0]], [[0.6, 0.4, 0.95], [0.1, 0.25, 0.2]]],
    np.float32)


def test_threshold_recipe_constant_background():
    # bg 0.2; ties go to the background ((1, 2): CAM 7 = 0.2).
    np.testing.assert_array_equal(
        threshold_recipe(CAMS_T, [3, 7], bg_threshold=0.2),
        [[7, 3, 7], [3, 7, 0]])
    np.testing.assert_array_equal(
        threshold_recipe(CAMS_T, [3, 7], bg_threshold=0.5),
        [[7, 0, 7], [0, 0, 0]])
    out = threshold_recipe(CAMS_T, [3, 7])
    assert out.dtype == np.uint8 and out.shape == (2, 3)


def test_threshold_recipe_background_map():
    bg_map = np.array([[0.7, 0.1, 0.1], [0.1, 0.3, 0.1]], np.float32)
    np.testing.assert_array_equal(
        threshold_recipe(CAMS_T, [3, 7], bg_map=bg_map),
        [[0, 3, 7], [3, 0, 7]])


def test_threshold_recipe_no_tags_is_background():
    out = threshold_recipe(np.zeros((0, 2, 2)), np.zeros(0))
    np.testing.assert_array_equal(out, np.zeros((2, 2)))


def test_threshold_recipe_rejects_mismatch():
    with pytest.raises(ValueError, match='K = 1'):
        threshold_recipe(CAMS_T, [3])
    with pytest.raises(ValueError, match='1..254'):
        threshold_recipe(CAMS_T, [0, 7])
    with pytest.raises(ValueError, match='bg_map'):
        threshold_recipe(CAMS_T, [3, 7], bg_map=np.zeros((3, 3)))


# Saliency recipe: classes 2 and 5, saliency given in 0..255 as in the
# OAA / RCA scripts.
SAL = np.array([[0, 31, 32, 255], [0, 0, 255, 255], [10, 10, 200, 255]],
               np.float32) / 255
CAMS_S = np.array([
    [[0, 0, 0, 0.95], [0.85, 0, 0.5, 0.3], [0, 0, 0.6, 0.2]],
    [[0, 0, 0, 0.92], [0, 0, 0.4, 0.7], [0, 0.3, 0.1, 0]],
], np.float32)


def test_saliency_recipe_rules():
    # (0,2): background by argmax but saliency 32 >= 32 -> 255;
    # (0,3): two classes above 0.9 -> 255;
    # (1,0): background by argmax but CAM 2 = 0.85 > 0.8 -> 255;
    # (0,1): saliency 31 < 32 -> background; the rest by argmax.
    expected = [[0, 0, 255, 255], [255, 0, 2, 5], [0, 0, 2, 2]]
    np.testing.assert_array_equal(
        saliency_recipe(CAMS_S, [2, 5], SAL), expected)


def test_saliency_recipe_cam_floor_and_background_conflict():
    # OAA's floor 0.3: (2,3)'s CAM 0.2 drops to 0, background wins the tie
    # but saliency is 255 -> 255.
    out = saliency_recipe(CAMS_S, [2, 5], SAL, cam_floor=0.3)
    np.testing.assert_array_equal(
        out, [[0, 0, 255, 255], [255, 0, 2, 5], [0, 0, 2, 255]])
    # Background above the conflict threshold plus one class -> 255.
    sal = np.zeros((1, 2), np.float32)
    cams = np.array([[[0.95, 0.5]]], np.float32)
    np.testing.assert_array_equal(
        saliency_recipe(cams, [1], sal, min_fg_ratio=0), [[255, 0]])


def test_saliency_recipe_small_foreground_ignores_image():
    # 4 foreground pixels of 12: kept at 0.33, dropped at 0.34.
    kept = saliency_recipe(CAMS_S, [2, 5], SAL, min_fg_ratio=0.33)
    assert ((kept > 0) & (kept < 255)).sum() == 4
    dropped = saliency_recipe(CAMS_S, [2, 5], SAL, min_fg_ratio=0.34)
    assert (dropped == 255).all()


def test_saliency_recipe_rejects_shape_mismatch():
    with pytest.raises(ValueError, match='saliency of shape'):
        saliency_recipe(CAMS_S, [2, 5], SAL[:2])


def test_crf_refine_cams_scores_and_channels(monkeypatch):
    """The CRF gets [(1 - max CAM)^alpha, CAMs] normalised over classes and
    the PSA kernel parameters; the class marginals come back."""
    seen = {}

    def fake_crf(image, probs, **kwargs):
        seen.update(probs=probs, kwargs=kwargs)
        return probs * 2

    monkeypatch.setattr(dense_crf_module, 'dense_crf', fake_crf)
    cams = np.array([[[0.5, 1.0]], [[0.25, 0.0]]], np.float32)
    image = np.zeros((1, 2, 3), np.uint8)
    out = crf_refine_cams(image, cams)
    scores = np.array([[[0.5**4, 1e-5]], [[0.5, 1.0]], [[0.25, 1e-5]]])
    expected = scores / scores.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(seen['probs'], expected, rtol=1e-6)
    np.testing.assert_allclose(out, 2 * expected[1:], rtol=1e-6)
    assert seen['kwargs'] == dict(
        num_iters=10,
        gaussian_sxy=3.,
        gaussian_compat=3.,
        bilateral_sxy=80.,
        bilateral_srgb=13.,
        bilateral_compat=10.)
    crf_refine_cams(image, cams, alpha=2, num_iters=3)
    np.testing.assert_allclose(
        seen['probs'][0, 0, 0], 0.25 / (0.25 + 0.5 + 0.25), rtol=1e-6)
    assert seen['kwargs']['num_iters'] == 3


def test_crf_refine_cams_snaps_to_colour_edge():
    """A CAM spilling weakly two columns past a red/blue edge is pulled
    back (without the CRF, the threshold recipe would keep them)."""
    pytest.importorskip('pydensecrf')
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :8] = (220, 20, 20)
    image[:, 8:] = (20, 20, 220)
    cams = np.zeros((1, 16, 16), np.float32)
    cams[0, :, :8] = 0.9
    cams[0, :, 8:10] = 0.5
    refined = crf_refine_cams(image, cams)
    assert refined.shape == (1, 16, 16) and refined.dtype == np.float32
    assert (refined[0, :, :8] > 0.5).all()
    assert (refined[0, :, 8:] < 0.5).all()
    assert crf_refine_cams(image, cams[:0]).shape == (0, 16, 16)
