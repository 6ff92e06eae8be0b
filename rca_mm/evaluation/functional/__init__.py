"""Pure numpy functions of the pseudo-label stage: recipes, confusion
matrices and the mIoU protocols, image lists, and the files they read and
write."""
from .confusion import (PROTOCOLS, confusion_matrix, iou_from_confusion,
                        summarize_confusion)
from .image_list import find_image_list, read_image_names
from .pseudo_label_io import (atomic_write, load_cam_npz, read_label_png,
                              save_cam_npz)
from .pseudo_label_recipes import (crf_refine_cams, saliency_recipe,
                                   threshold_recipe)

__all__ = [
    'PROTOCOLS', 'confusion_matrix', 'iou_from_confusion',
    'summarize_confusion', 'find_image_list', 'read_image_names',
    'atomic_write', 'load_cam_npz', 'read_label_png', 'save_cam_npz',
    'crf_refine_cams', 'saliency_recipe', 'threshold_recipe'
]
