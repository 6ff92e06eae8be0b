"""Transforms for WSSS: image-level labels, saliency maps, packing."""
from .formatting import PackWSSSInputs, check_num_classes  # noqa: F401
from .loading import (LoadSaliencyMap, LoadWSSSAnnotations,  # noqa: F401
                      LoadWSSSImageFromFile)
from .padding import PadToSize  # noqa: F401
