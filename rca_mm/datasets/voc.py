"""PASCAL VOC 2012 (+ SBD "train_aug") with image-level tags."""
from typing import Dict, Optional

from rca_mm.fileio import voc_palette
from rca_mm.registry import DATASETS
from .metainfo import VOC_CLASSES
from .wsss_dataset import WSSSDataset


@DATASETS.register_module()
class WSSSVOCDataset(WSSSDataset):
    """VOC 2012 for WSSS: 20 foreground classes.

    .. code:: text

        data/VOCdevkit/VOC2012/
          JPEGImages/<name>.jpg
          SegmentationClassAug/<name>.png     palette PNG, 255 = ignore
          SaliencyMaps/<name>.png             optional, grey 0..255
          ImageSets/Segmentation/{train_aug,train,val}.txt
          ImageSets/Segmentation/{train_aug,train,val}_cls.txt  tag files

    written by ``tools/dataset_converters/voc_aug.py`` (see
    ``docs/datasets.md``). Arguments are those of :class:`WSSSDataset`, with
    the VOC directories as the default ``data_prefix``.
    """
    METAINFO = dict(
        classes=VOC_CLASSES, palette=voc_palette(len(VOC_CLASSES)).tolist())

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
