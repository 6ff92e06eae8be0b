"""Every on-disk format of rca_mm: atomic writes (and mmengine's
``atomic_local`` file backend), the VOC palette, label PNGs, images,
saliency maps, image lists and tag files, and the ``.npz`` archives of CAMs
and of the OAA store."""
from .archives import (load_cam_npz, load_class_maps, load_oaa_npz,
                       save_cam_npz, save_oaa_npz)
from .atomic import (atomic_open, atomic_write, atomic_write_bytes,
                     atomic_write_lines, pid_alive, remove_stale_temporaries,
                     write_json_atomic)
from .atomic_local_backend import AtomicLocalBackend
from .image import read_image
from .label_png import (label_map_classes, read_label_png, read_voc_label_png,
                        save_label_png)
from .lists import (find_image_list, list_stems, read_list_file, read_tag_file,
                    stem_of, write_tag_file)
from .oaa_store import OAAEntry, OAAMemory, OAAStore
from .palette import VOC_IGNORE_COLOUR, voc_palette
from .saliency import read_saliency_map

__all__ = [
    'load_cam_npz', 'load_class_maps', 'load_oaa_npz', 'save_cam_npz',
    'save_oaa_npz', 'atomic_open', 'atomic_write', 'atomic_write_bytes',
    'atomic_write_lines', 'pid_alive', 'remove_stale_temporaries',
    'write_json_atomic', 'AtomicLocalBackend', 'read_image',
    'label_map_classes', 'read_label_png', 'read_voc_label_png',
    'save_label_png', 'find_image_list', 'list_stems', 'read_list_file',
    'read_tag_file', 'stem_of', 'write_tag_file', 'OAAEntry', 'OAAMemory',
    'OAAStore', 'VOC_IGNORE_COLOUR', 'voc_palette', 'read_saliency_map'
]
