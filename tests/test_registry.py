import pytest
from mmengine.registry import DefaultScope
from mmseg.models import EncoderDecoder
from mmseg.registry import MODELS as MMSEG_MODELS

from rca_mm import registry
from rca_mm.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS


def test_registries_are_children_of_mmseg_in_rca_mm_scope():
    for reg in (MODELS, DATASETS, TRANSFORMS, HOOKS, METRICS):
        assert reg.scope == 'rca_mm'
        assert reg.parent is not None and reg.parent.scope == 'mmseg'
        assert reg.parent.children['rca_mm'] is reg
    assert MODELS.parent is MMSEG_MODELS


def test_locations_point_at_existing_packages():
    import importlib
    for name in dir(registry):
        reg = getattr(registry, name)
        if isinstance(reg, type(MODELS)) and reg.scope == 'rca_mm':
            for loc in reg._locations:
                assert loc.startswith('rca_mm.')
                importlib.import_module(loc)


def test_mmseg_module_by_plain_name_and_mmpretrain_by_prefix():
    with DefaultScope.overwrite_default_scope('rca_mm'):
        assert MODELS.get('EncoderDecoder') is EncoderDecoder
        assert MODELS.get('mmseg.EncoderDecoder') is EncoderDecoder
        backbone = MODELS.build(
            dict(
                type='mmpretrain.ResNet',
                depth=18,
                base_channels=8,
                stem_channels=8))
    from mmpretrain.models import ResNet
    assert isinstance(backbone, ResNet)


def test_registering_here_does_not_leak_into_mmseg():
    import torch.nn as nn

    @MODELS.register_module(name='_RcaMmProbeModule')
    class Probe(nn.Module):
        pass

    try:
        assert MODELS.get('_RcaMmProbeModule') is Probe
        assert '_RcaMmProbeModule' not in MMSEG_MODELS.module_dict
    finally:
        MODELS.module_dict.pop('_RcaMmProbeModule')


def test_rca_mm_prefix_reaches_our_modules_inside_mmseg_scoped_dicts():
    """A model inherited from an ``mmseg::`` base config carries
    ``_scope_='mmseg'``; rca_mm modules swapped into it are named
    ``rca_mm.X`` (docs/get_started.md)."""
    import torch.nn as nn
    from mmengine.registry import MODELS as ROOT_MODELS

    @MODELS.register_module(name='_RcaMmScopeProbe')
    class Probe(nn.Module):
        pass

    try:
        with DefaultScope.overwrite_default_scope('rca_mm'):
            for cfg in (dict(type='_RcaMmScopeProbe'),
                        dict(type='rca_mm._RcaMmScopeProbe'),
                        dict(type='rca_mm._RcaMmScopeProbe', _scope_='mmseg')):
                assert isinstance(ROOT_MODELS.build(cfg), Probe)
            with pytest.raises(KeyError, match='mmseg::model'):
                ROOT_MODELS.build(
                    dict(type='_RcaMmScopeProbe', _scope_='mmseg'))
    finally:
        MODELS.module_dict.pop('_RcaMmScopeProbe')


def test_pseudo_label_recipes_are_a_registry_of_their_own():
    """No parent (mmseg has no such registry); its location registers the
    recipes on first use, in rca_mm's scope or none."""
    from rca_mm.registry import PSEUDO_LABEL_RECIPES
    assert PSEUDO_LABEL_RECIPES.scope == 'rca_mm'
    assert PSEUDO_LABEL_RECIPES.parent is None
    with DefaultScope.overwrite_default_scope('rca_mm'):
        recipe = PSEUDO_LABEL_RECIPES.build(
            dict(type='SaliencyRecipe', cam_floor=0.3))
    assert type(recipe).__name__ == 'SaliencyRecipe'
    assert recipe.rule_cfg['cam_floor'] == 0.3
    assert set(PSEUDO_LABEL_RECIPES.module_dict) == {
        'ThresholdRecipe', 'BackgroundMapRecipe', 'SaliencyRecipe'
    }
