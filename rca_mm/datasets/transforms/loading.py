"""Loading transforms of WSSS samples: the image, the label map and the
saliency map, each checked with an error that names the file."""
import logging
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from rca_mm.fileio import read_image, read_label_png, read_saliency_map
from rca_mm.fileio.label_png import check_label_values
from rca_mm.registry import TRANSFORMS

_NOTED_CONVERSIONS = set()


def _check_aligned(results: dict, array: np.ndarray, path: str,
                   what: str) -> None:
    """``array`` must have the size of the image as loaded, and be loaded
    before any transform changed the image's size."""
    ori_shape = tuple(results['ori_shape'][:2])
    if tuple(results['img'].shape[:2]) != ori_shape:
        raise RuntimeError(
            f'the {what} of {results["img_path"]!r} must be loaded before any '
            f'transform that changes the image size (Resize, RandomCrop, '
            f'...): move its loading transform up in the pipeline')
    if tuple(array.shape[:2]) != ori_shape:
        raise ValueError(
            f'{what} {path!r} is {array.shape[1]}x{array.shape[0]} (WxH) but '
            f'its image {results["img_path"]!r} is '
            f'{ori_shape[1]}x{ori_shape[0]}: they must have the same size')


@TRANSFORMS.register_module()
class LoadWSSSImageFromFile(BaseTransform):
    """Load an image as BGR ``uint8``, with clear errors.

    Grey, palette, RGBA and CMYK images are converted to RGB; the first
    conversion of each kind is logged with the file's name. A missing,
    unreadable or truncated file, or a 16-bit image, raises an error naming
    the file (mmcv's ``LoadImageFromFile`` would decode a truncated JPEG
    with grey filling, or fail on ``None``).

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``,
    ``ori_shape``.

    Args:
        to_float32 (bool): return a float32 image. Default: False.
    """

    def __init__(self, *, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def transform(self, results: dict) -> dict:
        """Read ``results['img_path']``.

        Args:
            results (dict): the data info.

        Returns:
            dict: ``results`` with the image and its shape.
        """
        img, note = read_image(results['img_path'])
        if note is not None:
            kind = note.split(' is a ')[-1]
            if kind not in _NOTED_CONVERSIONS:
                _NOTED_CONVERSIONS.add(kind)
                print_log(
                    f'{note} (reported once per kind of image)',
                    logger='current',
                    level=logging.WARNING)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(to_float32={self.to_float32})'


@TRANSFORMS.register_module()
class LoadWSSSAnnotations(BaseTransform):
    """Load the label map of a sample, if it has one.

    The map must be an 8-bit palette or grey PNG of the image's size whose
    values are classes of the dataset (``0..num_fg_classes``) or
    ``ignore_index``; otherwise an error names the file. A sample without a
    label map (``seg_map_path`` None: tags from a tag file, no masks) passes
    through unchanged, so one pipeline serves both. Stage 2 reads its pseudo
    labels with it too (after mmcv's ``LoadImageFromFile``): the array is
    the one mmseg's ``LoadAnnotations`` gives (uint8 indices,
    ``reduce_zero_label=False``), with these checks added.

    Required keys: ``seg_map_path``, ``seg_fields``, ``img``, ``ori_shape``;
    ``num_fg_classes`` (set by :class:`WSSSDataset`) for the value check.
    Added keys: ``gt_seg_map`` (uint8 ``(H, W)``), appended to
    ``seg_fields``.

    Args:
        ignore_index (int): the ignore value. Default: 255.
    """

    def __init__(self, *, ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        """Read ``results['seg_map_path']`` when it is not None.

        Args:
            results (dict): the data info after image loading.

        Returns:
            dict: ``results``, with ``gt_seg_map`` when there is a map.
        """
        path = results.get('seg_map_path')
        if path is None:
            return results
        seg = read_label_png(path)
        _check_aligned(results, seg, path, 'label map')
        num_fg = results.get('num_fg_classes')
        if num_fg is not None:
            values = np.flatnonzero(np.bincount(seg.ravel(), minlength=256))
            check_label_values(path, values, num_fg + 1, self.ignore_index)
        results['gt_seg_map'] = seg
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(ignore_index={self.ignore_index})'


@TRANSFORMS.register_module()
class LoadSaliencyMap(BaseTransform):
    """Load a saliency map as float32 ``[0, 1]`` into ``gt_saliency``.

    The key is appended to ``seg_fields``, so mmseg's ``Resize``,
    ``RandomResize``, ``RandomCrop`` and ``RandomFlip`` move it with the
    image (``Resize`` interpolates seg fields with nearest neighbour) and
    :class:`PadToSize` pads it with 0. Put it right after the image loading:
    the map must have the image's size, and an error names both files when
    it does not.

    Required keys: ``sal_path``, ``img``, ``ori_shape``. Added keys:
    ``gt_saliency`` (float32 ``(H, W)``), appended to ``seg_fields``.

    Args:
        optional (bool): whether a sample without a saliency map
            (``sal_path`` None) passes through without ``gt_saliency``; when
            False it raises. Default: False.
    """

    def __init__(self, *, optional: bool = False) -> None:
        self.optional = optional

    def transform(self, results: dict) -> dict:
        """Read ``results['sal_path']``.

        Args:
            results (dict): the data info after image loading.

        Returns:
            dict: ``results`` with ``gt_saliency`` when there is a map.
        """
        path: Optional[str] = results.get('sal_path')
        if path is None:
            if self.optional:
                return results
            raise FileNotFoundError(
                f'no saliency map for {results.get("img_path")!r}: the '
                f'dataset\'s data_prefix.sal_path is None or its directory '
                f'does not exist (see docs/datasets.md, "Saliency maps"), '
                f'and LoadSaliencyMap(optional=False) needs one')
        sal = read_saliency_map(path)
        _check_aligned(results, sal, path, 'saliency map')
        results['gt_saliency'] = sal
        results.setdefault('seg_fields', []).append('gt_saliency')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(optional={self.optional})'
