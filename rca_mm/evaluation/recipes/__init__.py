"""Registered pseudo-label recipes: how CAMs become a label map.

Built from ``model.test_cfg.pseudo_label`` by ``CAMClassifier`` and by
``tools/analysis_tools/sweep_bg_threshold.py`` through
``rca_mm.registry.PSEUDO_LABEL_RECIPES``; each runs a function of
:mod:`rca_mm.evaluation.functional.pseudo_label_recipes`.
"""
from .background_map_recipe import BackgroundMapRecipe
from .base_recipe import BasePseudoLabelRecipe
from .saliency_recipe import SaliencyRecipe
from .threshold_recipe import ThresholdRecipe

__all__ = [
    'BasePseudoLabelRecipe', 'ThresholdRecipe', 'BackgroundMapRecipe',
    'SaliencyRecipe'
]
