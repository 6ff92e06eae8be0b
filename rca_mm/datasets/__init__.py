"""Datasets (VOC, COCO, SynthVOC) and their transforms."""
# rca_mm's registries search mmseg's as parents, which reads their module
# tables without importing mmseg's packages: import them here, where
# rca_mm.registry's `locations` lead.
import mmseg.datasets  # noqa: F401

from . import transforms  # noqa: F401
from .coco import WSSSCOCODataset  # noqa: F401
from .metainfo import COCO_CLASSES, SYNTHVOC_CLASSES, VOC_CLASSES  # noqa: F401
from .synthvoc_dataset import SynthVOCDataset  # noqa: F401
from .transforms import check_num_classes  # noqa: F401
from .voc import WSSSVOCDataset  # noqa: F401
from .wsss_dataset import WSSSDataset  # noqa: F401
