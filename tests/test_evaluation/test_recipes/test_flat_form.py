import inspect

import pytest

from rca_mm.evaluation.recipes import recipe_from_flat_form
from rca_mm.evaluation.recipes.flat_form import RECIPE_KEYS, flat_key_error
from rca_mm.registry import PSEUDO_LABEL_RECIPES


@pytest.mark.parametrize(
    'recipe, flat, cfg, unused',
    [
        ('threshold', {}, dict(type='ThresholdRecipe'), []),
        ('threshold', dict(bg_threshold=0.3, crf=True, crf_cfg=dict(alpha=4)),
         dict(
             type='ThresholdRecipe',
             bg_threshold=0.3,
             crf=True,
             crf_cfg=dict(alpha=4)), []),
        # The SynthVOC EPS config: the base's bg_threshold stays, unused.
        ('threshold', dict(bg_threshold=0.2, bg_source='map'),
         dict(type='BackgroundMapRecipe'), ['bg_threshold']),
        ('threshold', dict(bg_source='threshold', cam_floor=0.3),
         dict(type='ThresholdRecipe'), ['cam_floor']),
        ('saliency',
         dict(
             crf=True, crf_cfg=dict(alpha=4), cam_floor=0.3, bg_threshold=0.2),
         dict(
             type='SaliencyRecipe',
             crf=True,
             crf_cfg=dict(alpha=4),
             cam_floor=0.3), ['bg_threshold']),
    ])
def test_translation(recipe, flat, cfg, unused):
    assert recipe_from_flat_form(recipe, flat) == (cfg, unused)
    PSEUDO_LABEL_RECIPES.build(cfg)


def test_recipe_keys_are_the_constructors():
    for name, keys in RECIPE_KEYS.items():
        recipe = PSEUDO_LABEL_RECIPES.get(name)
        assert set(keys) == set(inspect.signature(recipe).parameters)


@pytest.mark.parametrize('recipe, flat, error, match', [
    ('crf', {}, ValueError, "recipe config.*'crf'"),
    ('threshold', dict(bg_source='saliency'), ValueError, 'bg_source'),
    ('saliency', dict(bg_source='map'), ValueError, "bg_source='map'"),
    ('threshold', dict(conflict_threshold=2), ValueError,
     '`conflict_threshold` must be in'),
    ('threshold', dict(bg_thresh=0.2), TypeError, 'bg_thresh'),
])
def test_errors(recipe, flat, error, match):
    with pytest.raises(error, match=match):
        recipe_from_flat_form(recipe, flat)


def test_flat_key_error_names_the_new_key():
    error = flat_key_error(['cam_floor'])
    assert isinstance(error, ValueError)
    assert '`recipe.cam_floor` instead' in str(error)
    assert "recipe.type='BackgroundMapRecipe'" in str(
        flat_key_error(['bg_source']))
    # A key of neither form is a misspelling, named as such.
    error = flat_key_error(['crf', 'bg_thresh'])
    assert isinstance(error, TypeError) and "['bg_thresh']" in str(error)
