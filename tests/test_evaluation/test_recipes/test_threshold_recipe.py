import importlib

import numpy as np
import pytest

from rca_mm.evaluation.recipes import BasePseudoLabelRecipe, ThresholdRecipe
from rca_mm.registry import PSEUDO_LABEL_RECIPES

# The threshold example of test_pseudo_label_recipes.py: ids 3 and 7.
CAMS_T = np.array(
    [[[0.1, 0.5, 0.9], [0.3, 0.2, 0.0]], [[0.6, 0.4, 0.95], [0.1, 0.25, 0.2]]],
    np.float32)
IMAGE = np.zeros((2, 3, 3), np.uint8)


def fake_dense_crf(monkeypatch, seen):
    """Replace the dense CRF: it records its call, halves the CAMs'
    marginals and leaves the background's."""

    def fake(image, probs, **kwargs):
        seen.append(kwargs)
        return np.concatenate([probs[:1], probs[1:] / 2])

    monkeypatch.setattr(
        importlib.import_module('rca_mm.models.postprocess.dense_crf'),
        'dense_crf', fake)


def fake_refined(cams, alpha=4.):
    """What crf_refine_cams returns with that fake: PSA's scores
    [(1 - max CAM)^alpha, CAMs], floored and normalised, CAMs halved."""
    scores = np.concatenate([(1 - cams.max(0, keepdims=True))**alpha, cams])
    scores = np.clip(scores, 1e-5, None)
    return scores[1:] / scores.sum(0) / 2


def test_built_from_the_registry():
    recipe = PSEUDO_LABEL_RECIPES.build(
        dict(type='ThresholdRecipe', bg_threshold=0.5))
    assert isinstance(recipe, ThresholdRecipe)
    assert isinstance(recipe, BasePseudoLabelRecipe)
    assert not recipe.needs_image
    np.testing.assert_array_equal(
        recipe(CAMS_T, [3, 7]), [[7, 0, 7], [0, 0, 0]])
    # The default is EPS's 0.2; ties go to background; pred_bg is not used.
    np.testing.assert_array_equal(
        ThresholdRecipe()(CAMS_T, [3, 7], bg_map=np.ones((2, 3))),
        [[7, 3, 7], [3, 7, 0]])
    assert 'bg_threshold=0.5' in repr(recipe)


def test_crf_option_refines_first(monkeypatch):
    seen = []
    fake_dense_crf(monkeypatch, seen)
    recipe = ThresholdRecipe(bg_threshold=0.2, crf=True, crf_cfg=dict(alpha=2))
    assert recipe.needs_image
    out = recipe(CAMS_T, [3, 7], image=IMAGE)
    expected = ThresholdRecipe()(fake_refined(CAMS_T, alpha=2), [3, 7])
    np.testing.assert_array_equal(out, expected)
    # Refined, the second row's CAMs fall below 0.2 (unrefined: [3, 7, 0]).
    np.testing.assert_array_equal(out, [[7, 3, 7], [0, 0, 0]])
    assert len(seen) == 1 and seen[0]['num_iters'] == 10
    with pytest.raises(ValueError, match='crf=True needs the image'):
        recipe(CAMS_T, [3, 7])


def test_rejects_bad_fraction():
    with pytest.raises(ValueError, match='`bg_threshold` must be in'):
        ThresholdRecipe(bg_threshold=1.5)
