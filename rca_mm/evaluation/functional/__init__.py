"""Pure numpy functions of the pseudo-label stage: recipes, confusion
matrices and the mIoU protocols, and image lists. The pseudo-label PNGs
and CAM archives are read and written by :mod:`rca_mm.fileio`."""
from .confusion import (PROTOCOLS, confusion_matrix, iou_from_confusion,
                        summarize_confusion)
from .image_list import find_image_list, read_image_names
from .pseudo_label_recipes import (crf_refine_cams, saliency_recipe,
                                   threshold_recipe)

__all__ = [
    'PROTOCOLS', 'confusion_matrix', 'iou_from_confusion',
    'summarize_confusion', 'find_image_list', 'read_image_names',
    'crf_refine_cams', 'saliency_recipe', 'threshold_recipe'
]
