"""Models: backbones, CAM classifiers, RCA head and memory bank, losses,
DeepLabV2 head."""
# rca_mm's registries search mmseg's as parents, which reads their module
# tables without importing mmseg's packages: import them here, where
# rca_mm.registry's `locations` lead.
import mmseg.models  # noqa: F401

from . import (backbones, classifiers, decode_heads, heads, layers, losses,
               memory, postprocess, segmentors)

__all__ = [
    'backbones', 'classifiers', 'decode_heads', 'heads', 'layers', 'losses',
    'memory', 'postprocess', 'segmentors'
]
