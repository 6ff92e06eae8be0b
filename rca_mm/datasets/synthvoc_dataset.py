"""SynthVOC (``docs/synthvoc.md``) with image-level tags."""
import os.path as osp
from typing import Dict, Optional

from rca_mm.fileio import voc_palette
from rca_mm.registry import DATASETS
from .metainfo import SYNTHVOC_CLASSES
from .wsss_dataset import WSSSDataset


def read_classes_file(path: str) -> tuple:
    """Class names from ``path``, one per line, background first."""
    with open(path) as f:
        names = tuple(line.strip() for line in f if line.strip())
    if len(names) < 2:
        raise ValueError(f'{path!r} must list the background and at least '
                         f'one class, one name per line; got {names}')
    if len(set(names)) != len(names):
        raise ValueError(f'{path!r} lists a class name twice: {names}')
    return names


@DATASETS.register_module()
class SynthVOCDataset(WSSSDataset):
    """SynthVOC, written in the VOC layout by
    ``tools/dataset_converters/synthvoc.py``.

    The classes are ``SYNTHVOC_CLASSES``, or the names in
    ``<data_root>/classes.txt`` when that file exists (the generator writes
    it when ``--num-classes`` is not 10). ``metainfo=dict(classes=...)``
    overrides both. Arguments are those of :class:`WSSSDataset`, with the
    VOC directories as the default ``data_prefix``.
    """
    METAINFO = dict(
        classes=SYNTHVOC_CLASSES,
        palette=voc_palette(len(SYNTHVOC_CLASSES)).tolist())

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train_aug.txt',
                 *,
                 data_root: Optional[str] = None,
                 data_prefix: Optional[Dict[str, Optional[str]]] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if data_prefix is None:
            data_prefix = dict(
                img_path='JPEGImages',
                seg_map_path='SegmentationClassAug',
                sal_path='SaliencyMaps')
        classes_file = osp.join(data_root or '', 'classes.txt')
        if (metainfo is None
                or 'classes' not in metainfo) and osp.isfile(classes_file):
            metainfo = dict(
                metainfo or {}, classes=read_classes_file(classes_file))
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            **kwargs)
