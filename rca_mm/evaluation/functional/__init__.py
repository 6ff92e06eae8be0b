"""Pure numpy functions of the pseudo-label stage: recipes, confusion
matrices and both mIoU protocols, and the files they read and write."""
from .confusion import (confusion_matrix, iou_from_confusion,
                        summarize_confusion)
from .pseudo_label_io import (atomic_write, load_cam_npz, read_label_png,
                              save_cam_npz)
from .pseudo_label_recipes import (crf_refine_cams, saliency_recipe,
                                   threshold_recipe)

__all__ = [
    'confusion_matrix', 'iou_from_confusion', 'summarize_confusion',
    'atomic_write', 'load_cam_npz', 'read_label_png', 'save_cam_npz',
    'crf_refine_cams', 'saliency_recipe', 'threshold_recipe'
]
