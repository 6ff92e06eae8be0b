"""The interface of the pseudo-label recipes, and PSA's CRF option."""
from abc import ABCMeta, abstractmethod
from typing import Dict, Optional

import numpy as np
from mmseg.utils import OptConfigType

from ..functional import crf_refine_cams


def check_fractions(owner: str, **values: float) -> None:
    """Raise if a setting that is a fraction of [0, 1] is outside it.

    Args:
        owner (str): the class the settings belong to, for the message.
        **values (float): the settings by their config keys.
    """
    for key, value in values.items():
        if not 0 <= value <= 1:
            raise ValueError(
                f'{owner}: `{key}` must be in [0, 1], got {value}')


class BasePseudoLabelRecipe(metaclass=ABCMeta):
    """A rule that makes an image's pseudo label from its CAMs.

    A recipe is called with the CAMs of the image's tagged classes and the
    other inputs the sample carries; with ``crf=True`` the CAMs go through
    PSA's dense CRF (:func:`crf_refine_cams`) first. Subclasses implement
    :meth:`label`, registered in ``PSEUDO_LABEL_RECIPES``.

    .. code:: text

        __call__(cams, class_ids, image, saliency, bg_map)
          |- crf: crf_refine_cams(image, cams, **crf_cfg)
          '- label(cams, class_ids, saliency, bg_map)  -> (H, W) uint8

    Args:
        crf (bool): refine the CAMs with PSA's dense CRF first (needs the
            image). Default: False.
        crf_cfg (dict, optional): keyword arguments of
            :func:`crf_refine_cams` (``alpha``, ``num_iters``, kernel
            parameters) overriding its PSA defaults. Default: None.
    """

    def __init__(self,
                 *,
                 crf: bool = False,
                 crf_cfg: OptConfigType = None) -> None:
        self.crf = crf
        self.crf_cfg: Dict = dict(crf_cfg or {})

    @property
    def needs_image(self) -> bool:
        """Whether :meth:`__call__` needs the image (for the CRF)."""
        return self.crf

    def __call__(self,
                 cams: np.ndarray,
                 class_ids: np.ndarray,
                 *,
                 image: Optional[np.ndarray] = None,
                 saliency: Optional[np.ndarray] = None,
                 bg_map: Optional[np.ndarray] = None) -> np.ndarray:
        """The pseudo label of one image.

        Args:
            cams (np.ndarray): (K, H, W) CAMs of the tagged classes, in
                [0, 1].
            class_ids (np.ndarray): (K,) their label-map ids (1..L).
            image (np.ndarray, optional): (H, W, 3) uint8 RGB image; needed
                with ``crf=True``.
            saliency (np.ndarray, optional): (H, W) saliency in [0, 1]
                (``gt_saliency``).
            bg_map (np.ndarray, optional): (H, W) background score in
                [0, 1] from the model (``pred_bg``).

        Returns:
            np.ndarray: (H, W) uint8 labels: 0 background, ``class_ids``,
            255 ignore.
        """
        if self.crf:
            if image is None:
                raise ValueError(f'{type(self).__name__} with crf=True needs '
                                 'the image')
            cams = crf_refine_cams(image, cams, **self.crf_cfg)
        return self.label(cams, class_ids, saliency=saliency, bg_map=bg_map)

    @abstractmethod
    def label(self, cams: np.ndarray, class_ids: np.ndarray, *,
              saliency: Optional[np.ndarray],
              bg_map: Optional[np.ndarray]) -> np.ndarray:
        """The recipe's rule on the (refined) CAMs; arguments as
        :meth:`__call__`'s."""

    def __repr__(self) -> str:
        settings = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({settings})'
