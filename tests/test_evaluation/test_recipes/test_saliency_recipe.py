import numpy as np
import pytest

from rca_mm.evaluation.functional import saliency_recipe
from rca_mm.evaluation.recipes import SaliencyRecipe
from rca_mm.registry import PSEUDO_LABEL_RECIPES
# The saliency example of test_pseudo_label_recipes.py: classes 2 and 5.
from tests.test_evaluation.test_functional.test_pseudo_label_recipes import (
    CAMS_S, SAL)
from tests.test_evaluation.test_recipes.test_threshold_recipe import (
    fake_dense_crf, fake_refined)


def test_rules_and_settings():
    recipe = PSEUDO_LABEL_RECIPES.build(dict(type='SaliencyRecipe'))
    np.testing.assert_array_equal(
        recipe(CAMS_S, [2, 5], saliency=SAL),
        [[0, 0, 255, 255], [255, 0, 2, 5], [0, 0, 2, 2]])
    # OAA's CAM floor reaches the rule: (2, 3) becomes 255.
    floored = SaliencyRecipe(cam_floor=0.3)(CAMS_S, [2, 5], saliency=SAL)
    assert floored[2, 3] == 255
    assert (SaliencyRecipe(min_fg_ratio=0.34)(CAMS_S, [2, 5],
                                              saliency=SAL) == 255).all()
    with pytest.raises(ValueError, match='needs `gt_saliency`'):
        recipe(CAMS_S, [2, 5])


def test_crf_option(monkeypatch):
    seen = []
    fake_dense_crf(monkeypatch, seen)
    recipe = SaliencyRecipe(crf=True, crf_cfg=dict(alpha=8), min_fg_ratio=0)
    out = recipe(
        CAMS_S, [2, 5], image=np.zeros((3, 4, 3), np.uint8), saliency=SAL)
    expected = saliency_recipe(
        fake_refined(CAMS_S, alpha=8), [2, 5], SAL, min_fg_ratio=0)
    np.testing.assert_array_equal(out, expected)
    assert len(seen) == 1
    # Refined, no CAM is above 0.8 any more: (1, 0) is background.
    assert out[1, 0] == 0


@pytest.mark.parametrize('key', [
    'conflict_threshold', 'saliency_bg_threshold', 'cam_confident_threshold',
    'cam_floor', 'min_fg_ratio'
])
def test_rejects_bad_fraction(key):
    with pytest.raises(ValueError, match=f'SaliencyRecipe: `{key}`'):
        SaliencyRecipe(**{key: -0.1})
