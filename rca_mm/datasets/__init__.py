"""Datasets (VOC, COCO, SynthVOC) and their transforms."""
# rca_mm's registries search mmseg's as parents, which reads their module
# tables without importing mmseg's packages: import them here, where
# rca_mm.registry's `locations` lead.
import mmseg.datasets  # noqa: F401

from . import transforms  # noqa: F401
