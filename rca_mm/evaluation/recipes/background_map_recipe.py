"""Background from the model's own background map (EPS)."""
from typing import Optional

import numpy as np

from rca_mm.registry import PSEUDO_LABEL_RECIPES
from ..functional import threshold_recipe
from .base_recipe import BasePseudoLabelRecipe


@PSEUDO_LABEL_RECIPES.register_module()
class BackgroundMapRecipe(BasePseudoLabelRecipe):
    """Label = argmax of (the model's ``pred_bg``, the CAMs).

    The threshold rule with EPS's saliency-like background map in place of
    the constant (:func:`threshold_recipe` with ``bg_map``); ties go to
    background, no pixel is 255. Needs a model that predicts ``pred_bg``
    (an EPS head).

    Args:
        crf (bool): PSA's dense CRF on the CAMs first. Default: False.
        crf_cfg (dict, optional): its settings, see
            :class:`BasePseudoLabelRecipe`. Default: None.
    """

    def label(self, cams: np.ndarray, class_ids: np.ndarray, *,
              saliency: Optional[np.ndarray],
              bg_map: Optional[np.ndarray]) -> np.ndarray:
        if bg_map is None:
            raise ValueError('BackgroundMapRecipe needs `pred_bg` from the '
                             'model (an EPS head)')
        return threshold_recipe(cams, class_ids, bg_map=bg_map)
