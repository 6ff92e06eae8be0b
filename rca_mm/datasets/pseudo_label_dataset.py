"""Segmentation dataset for stage 2: real images, pseudo-label PNGs.

Stage 2 of weakly supervised segmentation trains a fully supervised model
(DeepLabV2) on the pseudo labels exported from the stage-1 CAMs
(``tools/test.py`` with the pseudo-label metric writes one palette PNG per
image, 0 = background, 1..C = classes, 255 = ignore). This dataset pairs the
images of a VOC/COCO/SynthVOC layout with such a directory:

.. code:: text

    data_root/<data_prefix.img_path>/<name><img_suffix>      image
    <data_prefix.seg_map_path>/<name>.png                     pseudo label
    data_root/<ann_file>                                      one name a line

``data_prefix.seg_map_path`` may be absolute (a pseudo-label directory in a
work dir) or relative to ``data_root``; it is the key to override:
``--cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR``.
Pointed at ``SegmentationClassAug`` with ``val.txt`` the same class is the
validation set on the real ground truth.

At start-up every listed image must have a label file (one directory
listing; a missing one is an error counting them, with examples and the key
to fix). The files themselves are checked when a sample is loaded (10,582
VOC or 82k COCO headers would slow every start): a label whose size differs
from its image's raises an error naming both files; a label value that is
neither a class nor 255 raises an error naming the file.
"""
import os
import os.path as osp
from typing import Sequence, Union

import numpy as np
from mmseg.datasets import BaseSegDataset
from PIL import Image

from rca_mm.fileio import voc_palette
from rca_mm.registry import DATASETS
from . import metainfo as class_names

# Names accepted by ``classes``.
CLASS_SETS = dict(
    voc='VOC_CLASSES', coco='COCO_CLASSES', synthvoc='SYNTHVOC_CLASSES')


def resolve_classes(classes: Union[str, Sequence[str]],
                    data_root: str = '') -> tuple:
    """Class names (background first) for ``classes``.

    Args:
        classes (str | Sequence[str]): ``'voc'``, ``'coco'``, ``'synthvoc'``
            (the tuples of ``rca_mm.datasets.metainfo``; for ``'synthvoc'``
            the names in ``<data_root>/classes.txt`` when the generator
            wrote one) or the names themselves.
        data_root (str): the dataset root. Default: ''.

    Returns:
        tuple[str]: the class names.
    """
    if not isinstance(classes, str):
        names = tuple(classes)
    elif classes in CLASS_SETS:
        classes_file = osp.join(data_root or '', 'classes.txt')
        if classes == 'synthvoc' and osp.isfile(classes_file):
            with open(classes_file) as f:
                names = tuple(line.strip() for line in f if line.strip())
        else:
            names = getattr(class_names, CLASS_SETS[classes], None)
            if names is None:
                raise ValueError(
                    f'classes={classes!r}: rca_mm.datasets.metainfo has no '
                    f'{CLASS_SETS[classes]}')
    else:
        raise ValueError(f'classes={classes!r}: expected one of '
                         f'{sorted(CLASS_SETS)} or a sequence of names')
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f'classes: need background plus at least one class, '
                         f'all distinct; got {names}')
    return names


@DATASETS.register_module()
class PseudoLabelSegDataset(BaseSegDataset):
    """Images of a VOC/COCO/SynthVOC layout with pseudo (or real) labels.

    Args:
        ann_file (str): the image list, relative to ``data_root``.
            Default: 'ImageSets/Segmentation/train_aug.txt'.
        classes (str | Sequence[str]): ``'voc'``, ``'coco'``, ``'synthvoc'``
            or the names, background first (see :func:`resolve_classes`).
            Default: 'voc'.
        data_prefix (dict): ``img_path`` (images) and ``seg_map_path``
            (the pseudo-label directory, absolute or relative to
            ``data_root``). Default: ``dict(img_path='JPEGImages',
            seg_map_path='SegmentationClassAug')``.
        img_suffix (str): Default: '.jpg'.
        seg_map_suffix (str): Default: '.png'.
        **kwargs: the other arguments of mmseg's :class:`BaseSegDataset`
            (``data_root``, ``pipeline``, ``test_mode``, ...). ``metainfo``
            is built from ``classes`` and may not be given as well.
    """
    METAINFO: dict = dict()

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train_aug.txt',
                 *,
                 classes: Union[str, Sequence[str]] = 'voc',
                 data_prefix: dict = dict(
                     img_path='JPEGImages',
                     seg_map_path='SegmentationClassAug'),
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        if 'metainfo' in kwargs:
            raise ValueError('PseudoLabelSegDataset: set `classes`, not '
                             '`metainfo` (it is built from `classes`)')
        if not data_prefix.get('seg_map_path'):
            raise ValueError('PseudoLabelSegDataset: '
                             'data_prefix.seg_map_path (the pseudo-label '
                             'directory) is required')
        names = resolve_classes(classes, kwargs.get('data_root') or '')
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            metainfo=dict(
                classes=names, palette=voc_palette(len(names)).tolist()),
            reduce_zero_label=False,
            **kwargs)

    def load_data_list(self) -> list:
        """Check the list file and directories, then read the list.

        Raises:
            FileNotFoundError: the list file, image directory or label
                directory does not exist.
        """
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'PseudoLabelSegDataset: the image list ann_file '
                f'{self.ann_file!r} does not exist')
        for key in ('img_path', 'seg_map_path'):
            path = self.data_prefix[key]
            if not osp.isdir(path):
                raise FileNotFoundError(
                    f'PseudoLabelSegDataset: data_prefix.{key} {path!r} is '
                    'not a directory' +
                    (' (export the pseudo labels first, or fix the path)'
                     if key == 'seg_map_path' else ''))
        data_list = super().load_data_list()
        for info in data_list:
            info['img_name'] = osp.splitext(osp.basename(info['img_path']))[0]
        self.check_labels_exist(data_list)
        return data_list

    def check_labels_exist(self, data_list: list) -> None:
        """Raise if a listed image has no label file.

        One listing of the label directory (a ``stat`` for names in
        subdirectories).

        Raises:
            FileNotFoundError: the count of missing labels, up to three of
                them and the config key of the label directory.
        """
        seg_dir = self.data_prefix['seg_map_path']
        present = set(os.listdir(seg_dir))
        missing = []
        for info in data_list:
            rel = osp.relpath(info['seg_map_path'], seg_dir)
            if not (rel in present if osp.dirname(rel) == '' else osp.isfile(
                    info['seg_map_path'])):
                missing.append(info['seg_map_path'])
        if missing:
            examples = ', '.join(repr(p) for p in missing[:3])
            raise FileNotFoundError(
                f'PseudoLabelSegDataset: {len(missing)} of the '
                f'{len(data_list)} images listed in {self.ann_file!r} have '
                f'no label in {seg_dir!r} (e.g. {examples}). Export the '
                'missing pseudo labels (tools/test.py --out: re-running it '
                'writes only those), or point '
                'train_dataloader.dataset.data_prefix.seg_map_path at the '
                'directory that holds them')

    def check_label_file(self, data_info: dict) -> None:
        """Raise if the sample's label is gone (removed since start-up) or
        not the image's size.

        Reads the two PNG/JPEG headers only.
        """
        img_path, seg_path = data_info['img_path'], data_info['seg_map_path']
        if not osp.isfile(seg_path):
            raise FileNotFoundError(
                f'PseudoLabelSegDataset: the label {seg_path!r} of image '
                f'{img_path!r} (listed in {self.ann_file!r}) does not exist')
        with Image.open(img_path) as img, Image.open(seg_path) as seg:
            img_size, seg_size = img.size, seg.size
        if img_size != seg_size:
            raise ValueError(
                f'PseudoLabelSegDataset: the label {seg_path!r} is '
                f'{seg_size[0]}x{seg_size[1]} (WxH) but its image '
                f'{img_path!r} is {img_size[0]}x{img_size[1]}; pseudo labels '
                'must be at the original image size')

    def check_label_values(self, data: dict, seg_path: str) -> None:
        """Raise if the loaded label holds a value that is neither a class
        index nor ``ignore_index``."""
        sample = data.get('data_samples') if isinstance(data, dict) else None
        if sample is None or 'gt_sem_seg' not in sample:
            return
        values = np.unique(sample.gt_sem_seg.data.numpy())
        bad = values[(values >= len(self.metainfo['classes']))
                     & (values != self.ignore_index)]
        if bad.size:
            raise ValueError(
                f'PseudoLabelSegDataset: the label {seg_path!r} holds '
                f'value(s) {bad.tolist()}, which are neither classes (0..'
                f'{len(self.metainfo["classes"]) - 1}) nor ignore '
                f'({self.ignore_index})')

    def prepare_data(self, idx: int):
        """Check the sample's label file, then run the pipeline on it."""
        data_info = self.get_data_info(idx)
        self.check_label_file(data_info)
        data = self.pipeline(data_info)
        self.check_label_values(data, data_info['seg_map_path'])
        return data
