"""Padding of the image and every seg field to a fixed size, each with its
own fill value."""
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from rca_mm.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PadToSize(BaseTransform):
    """Pad ``img`` and the maps in ``seg_fields`` at the bottom and right up
    to ``size``; sides already as large are left alone.

    Put it right after mmseg's ``RandomCrop``, which returns a crop smaller
    than ``crop_size`` where the image is smaller, so that every sample of
    a batch has the crop size. mmcv's ``Pad`` pads only ``gt_seg_map``, and
    mmseg's ``SegDataPreprocessor`` only the inputs and ``gt_sem_seg``;
    here the saliency map is padded too, with 0 (not salient).

    The image is padded in its stored ``uint8`` values, before the model's
    normalisation; ``img_pad_val=(103.53, 116.28, 123.675)`` (the ImageNet
    mean, BGR) reproduces PSA/EPS, which pad after normalisation with 0.

    Modified keys: ``img`` and every key of ``seg_fields``. Added keys:
    ``pad_shape``; ``img_shape`` keeps the unpadded size, as after mmseg's
    data preprocessor.

    Args:
        size (int | tuple[int, int]): ``(h, w)`` to pad to.
        img_pad_val (float | Sequence[float]): the image's fill, one value or
            one per channel. Default: 0.
        seg_pad_val (int): the fill of label maps (ignore). Default: 255.
        field_pad_vals (dict, optional): fills of particular seg fields.
            Default: ``dict(gt_saliency=0.)``.
    """

    def __init__(self,
                 size: Union[int, Tuple[int, int]],
                 *,
                 img_pad_val: Union[float, Sequence[float]] = 0,
                 seg_pad_val: int = 255,
                 field_pad_vals: Optional[Dict[str, float]] = None) -> None:
        if isinstance(size, int):
            size = (size, size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f'PadToSize: size must be a positive int or '
                             f'(h, w), got {size}')
        self.size = tuple(int(s) for s in size)
        self.img_pad_val = img_pad_val
        self.seg_pad_val = seg_pad_val
        self.field_pad_vals = dict(
            gt_saliency=0.) if field_pad_vals is None else dict(field_pad_vals)

    @staticmethod
    def _pad(array: np.ndarray, size: Tuple[int, int],
             value: Union[float, Sequence[float]]) -> np.ndarray:
        h, w = array.shape[:2]
        out_h, out_w = max(h, size[0]), max(w, size[1])
        if (out_h, out_w) == (h, w):
            return array
        out = np.empty((out_h, out_w) + array.shape[2:], array.dtype)
        out[...] = np.asarray(value, dtype=array.dtype)
        out[:h, :w] = array
        return out

    def transform(self, results: dict) -> dict:
        """Pad the image and its maps.

        Args:
            results (dict): the sample after cropping.

        Returns:
            dict: the padded sample.
        """
        results['img'] = self._pad(results['img'], self.size, self.img_pad_val)
        for key in results.get('seg_fields', []):
            value = self.field_pad_vals.get(key, self.seg_pad_val)
            results[key] = self._pad(results[key], self.size, value)
        results['pad_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'img_pad_val={self.img_pad_val}, '
                f'seg_pad_val={self.seg_pad_val}, '
                f'field_pad_vals={self.field_pad_vals})')
