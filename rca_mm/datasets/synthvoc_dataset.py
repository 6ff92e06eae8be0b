"""SynthVOC (``docs/synthvoc.md``) with image-level tags."""
from typing import Dict, Optional

from rca_mm.fileio import voc_palette
from rca_mm.registry import DATASETS
from .metainfo import SYNTHVOC_CLASSES
from .wsss_dataset import WSSSDataset


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
    CLASSES_FILE = 'classes.txt'

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train_aug.txt',
                 *,
                 data_prefix: Optional[Dict[str, Optional[str]]] = None,
                 **kwargs) -> None:
        if data_prefix is None:
            data_prefix = dict(
                img_path='JPEGImages',
                seg_map_path='SegmentationClassAug',
                sal_path='SaliencyMaps')
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)
