"""Background where no CAM reaches a constant (PSA, IRN, EPS)."""
from typing import Optional

import numpy as np
from mmseg.utils import OptConfigType

from rca_mm.registry import PSEUDO_LABEL_RECIPES
from ..functional import threshold_recipe
from .base_recipe import BasePseudoLabelRecipe, check_fractions


@PSEUDO_LABEL_RECIPES.register_module()
class ThresholdRecipe(BasePseudoLabelRecipe):
    """Label = argmax of (the constant ``bg_threshold``, the CAMs).

    Ties go to background; no pixel is 255. The rule of PSA / IRN / EPS
    ``infer.py`` (:func:`threshold_recipe`).

    Args:
        bg_threshold (float): the background score of every pixel. Default:
            0.2 (EPS ``infer.py --thr``; IRN evaluates CAMs at 0.15).
        crf (bool): PSA's dense CRF on the CAMs first. Default: False.
        crf_cfg (dict, optional): its settings, see
            :class:`BasePseudoLabelRecipe`. Default: None.
    """

    def __init__(self,
                 *,
                 bg_threshold: float = 0.2,
                 crf: bool = False,
                 crf_cfg: OptConfigType = None) -> None:
        super().__init__(crf=crf, crf_cfg=crf_cfg)
        check_fractions(type(self).__name__, bg_threshold=bg_threshold)
        self.bg_threshold = bg_threshold

    def label(self, cams: np.ndarray, class_ids: np.ndarray, *,
              saliency: Optional[np.ndarray],
              bg_map: Optional[np.ndarray]) -> np.ndarray:
        return threshold_recipe(
            cams, class_ids, bg_threshold=self.bg_threshold)
