"""MS COCO 2014 with image-level tags, in the layout of
``tools/dataset_converters/coco2014.py``."""
from typing import Dict, Optional

from rca_mm.fileio import voc_palette
from rca_mm.registry import DATASETS
from .metainfo import COCO_CLASSES
from .wsss_dataset import WSSSDataset


@DATASETS.register_module()
class WSSSCOCODataset(WSSSDataset):
    """COCO 2014 for WSSS: 80 foreground classes in category-id order.

    .. code:: text

        data/coco2014/
          images/{train2014,val2014}/<name>.jpg       (links to COCO's dirs)
          SegmentationClass/{train2014,val2014}/<name>.png   0 = background,
                                        1..80 = category-id order, 255 = ignore
          SaliencyMaps/{train2014,val2014}/<name>.png  optional
          ImageSets/{train,val}.txt          images with at least one tag
          ImageSets/{train,val}_cls.txt      tag files

    Arguments are those of :class:`WSSSDataset`, with the ``train2014``
    directories as the default ``data_prefix``.
    """
    METAINFO = dict(
        classes=COCO_CLASSES, palette=voc_palette(len(COCO_CLASSES)).tolist())

    def __init__(self,
                 ann_file: str = 'ImageSets/train.txt',
                 *,
                 data_prefix: Optional[Dict[str, Optional[str]]] = None,
                 **kwargs) -> None:
        if data_prefix is None:
            data_prefix = dict(
                img_path='images/train2014',
                seg_map_path='SegmentationClass/train2014',
                sal_path='SaliencyMaps/train2014')
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)
