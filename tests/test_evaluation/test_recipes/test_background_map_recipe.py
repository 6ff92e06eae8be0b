import numpy as np
import pytest

from rca_mm.evaluation.functional import threshold_recipe
from rca_mm.registry import PSEUDO_LABEL_RECIPES
from tests.test_evaluation.test_recipes.test_threshold_recipe import (
    CAMS_T, IMAGE, fake_dense_crf, fake_refined)

BG = np.array([[0.7, 0.1, 0.1], [0.1, 0.3, 0.1]], np.float32)


def test_background_from_the_map():
    recipe = PSEUDO_LABEL_RECIPES.build(dict(type='BackgroundMapRecipe'))
    assert not recipe.needs_image
    np.testing.assert_array_equal(
        recipe(CAMS_T, [3, 7], bg_map=BG), [[0, 3, 7], [3, 0, 7]])
    with pytest.raises(ValueError, match='needs `pred_bg`'):
        recipe(CAMS_T, [3, 7])


def test_crf_option(monkeypatch):
    seen = []
    fake_dense_crf(monkeypatch, seen)
    recipe = PSEUDO_LABEL_RECIPES.build(
        dict(type='BackgroundMapRecipe', crf=True))
    flat = np.full((2, 3), 0.2, np.float32)
    out = recipe(CAMS_T, [3, 7], image=IMAGE, bg_map=flat)
    assert len(seen) == 1 and seen[0]['num_iters'] == 10
    np.testing.assert_array_equal(
        out, threshold_recipe(fake_refined(CAMS_T), [3, 7], bg_map=flat))
    # Refined, (1, 1)'s CAM 7 falls below the map (unrefined: 7).
    np.testing.assert_array_equal(out, [[7, 3, 7], [3, 0, 0]])
