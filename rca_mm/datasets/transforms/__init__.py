"""Transforms for WSSS: image-level labels, saliency maps, packing."""
from .formatting import PackWSSSInputs, check_num_classes
from .loading import (LoadSaliencyMap, LoadWSSSAnnotations,
                      LoadWSSSImageFromFile)
from .padding import PadToSize

__all__ = [
    'PackWSSSInputs', 'check_num_classes', 'LoadSaliencyMap',
    'LoadWSSSAnnotations', 'LoadWSSSImageFromFile', 'PadToSize'
]
