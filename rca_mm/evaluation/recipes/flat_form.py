"""The flat recipe settings of ``PseudoLabelMetric``, as a recipe config.

Before the recipes were registered, a config named the recipe with a string
and gave its settings as keys of the metric::

    dict(type='PseudoLabelMetric', recipe='saliency', crf=True,
         crf_cfg=dict(alpha=4), cam_floor=0.3)

That form keeps working: :func:`recipe_from_flat_form` turns it into

    dict(type='PseudoLabelMetric', recipe=dict(type='SaliencyRecipe',
         crf=True, crf_cfg=dict(alpha=4), cam_floor=0.3))

``recipe='threshold'`` is :class:`ThresholdRecipe`, or with
``bg_source='map'`` :class:`BackgroundMapRecipe`; ``recipe='saliency'`` is
:class:`SaliencyRecipe`. The flat form applied every fraction's range check
whatever the recipe, and ignored the settings of the other recipes; so does
the translation.
"""
from typing import Dict, List, Sequence, Tuple

FLAT_RECIPES = ('threshold', 'saliency')
BG_SOURCES = ('threshold', 'map')
FRACTIONS = ('bg_threshold', 'conflict_threshold', 'saliency_bg_threshold',
             'cam_confident_threshold', 'cam_floor', 'min_fg_ratio')
CRF_KEYS = ('crf', 'crf_cfg')
# The flat keys each recipe takes.
RECIPE_KEYS = dict(
    ThresholdRecipe=('bg_threshold', ) + CRF_KEYS,
    BackgroundMapRecipe=CRF_KEYS,
    SaliencyRecipe=FRACTIONS[1:] + CRF_KEYS)
FLAT_KEYS = FRACTIONS + CRF_KEYS + ('bg_source', )


def recipe_from_flat_form(recipe: str, flat: Dict) -> Tuple[Dict, List[str]]:
    """The recipe config of a flat-form metric config.

    Args:
        recipe (str): the metric's ``recipe``: ``'threshold'`` or
            ``'saliency'``.
        flat (dict): the metric's flat recipe settings, keys of
            ``FLAT_KEYS``.

    Returns:
        tuple: the recipe config (``dict(type=..., ...)``) and the keys of
        ``flat`` that the recipe does not take (ignored, as before).

    Raises:
        ValueError: an unknown ``recipe`` or ``bg_source``, ``bg_source='map'``
            with the saliency recipe, or a fraction outside [0, 1].
    """
    if recipe not in FLAT_RECIPES:
        raise ValueError(
            'PseudoLabelMetric: `recipe` must be a recipe config, e.g. '
            "dict(type='ThresholdRecipe'), or one of the names "
            f'{FLAT_RECIPES}, got {recipe!r}')
    unknown = sorted(set(flat) - set(FLAT_KEYS))
    if unknown:
        raise TypeError('PseudoLabelMetric got unexpected keyword arguments '
                        f'{unknown}')
    bg_source = flat.get('bg_source', 'threshold')
    if bg_source not in BG_SOURCES:
        raise ValueError(f'PseudoLabelMetric: `bg_source` must be one of '
                         f'{BG_SOURCES}, got {bg_source!r}')
    if bg_source == 'map' and recipe != 'threshold':
        raise ValueError("PseudoLabelMetric: bg_source='map' belongs to "
                         "recipe='threshold'; the saliency recipe takes "
                         'background from the saliency map')
    for key in FRACTIONS:
        if key in flat and not 0 <= flat[key] <= 1:
            raise ValueError(f'PseudoLabelMetric: `{key}` must be in '
                             f'[0, 1], got {flat[key]}')
    if recipe == 'saliency':
        recipe_type = 'SaliencyRecipe'
    elif bg_source == 'map':
        recipe_type = 'BackgroundMapRecipe'
    else:
        recipe_type = 'ThresholdRecipe'
    keys = RECIPE_KEYS[recipe_type]
    settings = {k: v for k, v in flat.items() if k in keys}
    unused = [k for k in flat if k not in keys and k != 'bg_source']
    return dict(type=recipe_type, **settings), unused


def flat_key_error(keys: Sequence[str]) -> Exception:
    """The error for metric keys beside a recipe config.

    Args:
        keys (Sequence[str]): the metric's keys that are not its own.

    Returns:
        Exception: a ``TypeError`` for a key that no form knows, else a
        ``ValueError`` naming the recipe key to set instead.
    """
    unknown = sorted(set(keys) - set(FLAT_KEYS))
    if unknown:
        return TypeError('PseudoLabelMetric got unexpected keyword arguments '
                         f'{unknown}')
    key = sorted(keys)[0]
    if key == 'bg_source':
        new = "`recipe.type='BackgroundMapRecipe'` (or 'ThresholdRecipe')"
    else:
        new = f'`recipe.{key}`'
    return ValueError(
        f'PseudoLabelMetric: `{key}` is a flat recipe setting, which goes '
        "with recipe='threshold' or 'saliency'; with a recipe config set "
        f'{new} instead')
