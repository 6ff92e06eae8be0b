"""Pure numpy functions of the pseudo-label stage: recipes, confusion
matrices and the mIoU protocols. The pseudo-label PNGs, image lists and
CAM archives are read and written by :mod:`rca_mm.fileio`."""
from .confusion import (PROTOCOLS, confusion_matrix, iou_from_confusion,
                        summarize_confusion)
from .pseudo_label_recipes import (crf_refine_cams, saliency_recipe,
                                   tagged_classes, threshold_recipe)

__all__ = [
    'PROTOCOLS', 'confusion_matrix', 'iou_from_confusion',
    'summarize_confusion', 'crf_refine_cams', 'saliency_recipe',
    'tagged_classes', 'threshold_recipe'
]
