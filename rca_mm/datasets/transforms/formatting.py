"""Packing a WSSS sample for the classifier, and the class-count check a
model or config can call."""
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.registry import TRANSFORMS


def check_num_classes(dataset_metainfo: dict,
                      num_classes: int,
                      key: str = 'model.decode_head.num_classes',
                      *,
                      with_background: bool = False,
                      source: str = '') -> int:
    """Check that ``num_classes`` is the dataset's class count.

    Image-level tags are over the ``L = len(classes) - 1`` foreground
    classes; a classifier must have ``L`` outputs. A segmentation head
    (``with_background``) has one output per class name, background
    included.

    Args:
        dataset_metainfo (dict): the dataset's ``metainfo`` (with
            ``classes``, background first).
        num_classes (int): the number to check.
        key (str): the config key ``num_classes`` came from, for the
            message. Default: 'model.decode_head.num_classes'.
        with_background (bool): expect ``len(classes)`` instead of
            ``len(classes) - 1``. Default: False.
        source (str): where the dataset's class names come from (its class
            file), for the message. Default: ''.

    Returns:
        int: the expected count.

    Raises:
        ValueError: the numbers differ; the message names ``key``.
    """
    classes = dataset_metainfo.get('classes') or ()
    num_fg = len(classes) - 1
    if num_fg < 1:
        raise ValueError(f'the dataset metainfo has no foreground classes '
                         f'(classes={tuple(classes)}); cannot check {key}')
    expected = len(classes) if with_background else num_fg
    if num_classes != expected:
        if with_background:
            counted = f'{expected} classes with the background'
            hint = (' (the background is a class of a segmentation head)'
                    if num_classes == num_fg else '')
        else:
            counted = f'{num_fg} foreground classes'
            hint = (' (it counts the background; tags and classifier '
                    'outputs are over the foreground classes only)'
                    if num_classes == num_fg + 1 else '')
        where = f' in {source}' if source else ''
        raise ValueError(
            f'{key}={num_classes} but the dataset has {counted} '
            f'({", ".join(map(str, classes[1:4]))}, ...; '
            f'metainfo.classes lists {len(classes)} names with the '
            f'background{where}){hint}. Set {key}={expected}')
    return expected


@TRANSFORMS.register_module()
class PackWSSSInputs(BaseTransform):
    """Pack a WSSS sample: ``inputs`` and a ``SegDataSample``.

    .. code:: text

        inputs             uint8 (3, H, W), BGR as loaded (the model's
                           SegDataPreprocessor converts and normalises)
        data_samples       SegDataSample
          gt_img_labels    float32 (L,) multi-hot tags from ``img_labels``
          gt_sem_seg       PixelData int64 (1, H, W), if a label map loaded
          gt_saliency      PixelData float32 (1, H, W) in [0, 1], if loaded
          metainfo         ``meta_keys`` present in the results

    ``L`` is ``num_classes`` when given, else the dataset's
    ``num_fg_classes`` that :class:`WSSSDataset` puts in every sample; when
    both are known they must agree (:func:`check_num_classes`).

    Args:
        num_classes (int, optional): ``L``, the foreground classes.
            Default: None (from the dataset).
        meta_keys (Sequence[str]): keys copied into the metainfo. Default:
            ``('img_path', 'img_name', 'sample_idx', 'ori_shape',
            'img_shape', 'pad_shape', 'scale_factor', 'flip',
            'flip_direction')``.
    """

    def __init__(
        self,
        *,
        num_classes: Optional[int] = None,
        meta_keys: Sequence[str] = ('img_path', 'img_name', 'sample_idx',
                                    'ori_shape', 'img_shape', 'pad_shape',
                                    'scale_factor', 'flip', 'flip_direction')
    ) -> None:
        self.num_classes = num_classes
        self.meta_keys = tuple(meta_keys)

    def _num_classes(self, results: dict) -> int:
        from_dataset = results.get('num_fg_classes')
        if self.num_classes is None:
            if from_dataset is None:
                raise ValueError(
                    f'PackWSSSInputs: the number of foreground classes is '
                    f'unknown for {results.get("img_path")!r}; pass '
                    f'num_classes=L or use a WSSSDataset')
            return int(from_dataset)
        if from_dataset is not None and from_dataset != self.num_classes:
            raise ValueError(
                f'PackWSSSInputs(num_classes={self.num_classes}) but the '
                f'dataset of {results.get("img_path")!r} has {from_dataset} '
                f'foreground classes (len(metainfo.classes) - 1): set '
                f'num_classes={from_dataset} or leave it None')
        return self.num_classes

    def transform(self, results: dict) -> dict:
        """Pack ``results``.

        Args:
            results (dict): the sample at the end of the pipeline.

        Returns:
            dict: ``inputs`` and ``data_samples``.
        """
        num_classes = self._num_classes(results)
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        data_sample = SegDataSample()
        labels = [int(c) for c in results.get('img_labels', [])]
        bad = [c for c in labels if not 0 <= c < num_classes]
        if bad:
            raise ValueError(
                f'tags {bad} of {results.get("img_path")!r} are outside the '
                f'{num_classes} foreground classes (0..{num_classes - 1})')
        multi_hot = torch.zeros(num_classes, dtype=torch.float32)
        multi_hot[labels] = 1.
        data_sample.set_data(dict(gt_img_labels=multi_hot))
        if results.get('gt_seg_map') is not None:
            seg = results['gt_seg_map'].astype(np.int64)
            data_sample.gt_sem_seg = PixelData(
                data=torch.from_numpy(np.ascontiguousarray(seg))[None])
        if results.get('gt_saliency') is not None:
            sal = results['gt_saliency'].astype(np.float32)
            data_sample.set_data(
                dict(
                    gt_saliency=PixelData(
                        data=torch.from_numpy(np.ascontiguousarray(sal))
                        [None])))
        data_sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'meta_keys={self.meta_keys})')
