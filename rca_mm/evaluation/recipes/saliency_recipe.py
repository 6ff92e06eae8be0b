"""Background from an off-the-shelf saliency map (OAA, RCA)."""
from typing import Optional

import numpy as np
from mmseg.utils import OptConfigType

from rca_mm.registry import PSEUDO_LABEL_RECIPES
from ..functional import saliency_recipe
from .base_recipe import BasePseudoLabelRecipe, check_fractions


@PSEUDO_LABEL_RECIPES.register_module()
class SaliencyRecipe(BasePseudoLabelRecipe):
    """Background ``1 - saliency``, argmax, and OAA's / RCA's ignore rules.

    Our reading of OAA-PyTorch ``gen_gt.py`` and RCA ``gen_labels.py``
    (:func:`saliency_recipe`, which lists the steps). Needs
    ``gt_saliency`` in the sample. RCA runs it with ``crf=True,
    crf_cfg=dict(alpha=4)``; with the CRF, the background marginal is
    dropped and background comes from saliency, as in RCA.

    Args:
        conflict_threshold (float): several scores above it -> 255.
            Default: 0.9 (OAA, RCA).
        saliency_bg_threshold (float): background needs saliency below it
            (saliency in [0, 1]). Default: 32 / 255 (OAA, RCA).
        cam_confident_threshold (float): background needs every CAM at most
            this. Default: 0.8 (OAA, RCA).
        cam_floor (float): CAM values below it count as 0. Default: 0 (RCA;
            OAA uses 0.3).
        min_fg_ratio (float): images with less foreground are ignored
            entirely. Default: 0.01 (OAA, RCA).
        crf (bool): PSA's dense CRF on the CAMs first. Default: False.
        crf_cfg (dict, optional): its settings, see
            :class:`BasePseudoLabelRecipe`. Default: None.
    """

    def __init__(self,
                 *,
                 conflict_threshold: float = 0.9,
                 saliency_bg_threshold: float = 32 / 255,
                 cam_confident_threshold: float = 0.8,
                 cam_floor: float = 0.,
                 min_fg_ratio: float = 0.01,
                 crf: bool = False,
                 crf_cfg: OptConfigType = None) -> None:
        super().__init__(crf=crf, crf_cfg=crf_cfg)
        self.rule_cfg = dict(
            conflict_threshold=conflict_threshold,
            saliency_bg_threshold=saliency_bg_threshold,
            cam_confident_threshold=cam_confident_threshold,
            cam_floor=cam_floor,
            min_fg_ratio=min_fg_ratio)
        check_fractions(type(self).__name__, **self.rule_cfg)

    def label(self, cams: np.ndarray, class_ids: np.ndarray, *,
              saliency: Optional[np.ndarray],
              bg_map: Optional[np.ndarray]) -> np.ndarray:
        if saliency is None:
            raise ValueError(
                "SaliencyRecipe needs `gt_saliency` in the sample; load "
                'the saliency map in the test pipeline')
        return saliency_recipe(cams, class_ids, saliency, **self.rule_cfg)
