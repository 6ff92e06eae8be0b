"""SynthVOC (``docs/synthvoc.md``) with image-level tags."""
from rca_mm.fileio import voc_palette
from rca_mm.registry import DATASETS
from .metainfo import SYNTHVOC_CLASSES
from .voc import WSSSVOCDataset


@DATASETS.register_module()
class SynthVOCDataset(WSSSVOCDataset):
    """SynthVOC, written in the VOC layout by
    ``tools/dataset_converters/synthvoc.py``.

    The classes are ``SYNTHVOC_CLASSES``, or the names in
    ``<data_root>/classes.txt`` when that file exists (the generator writes
    it when ``--num-classes`` is not 10). ``metainfo=dict(classes=...)``
    overrides both. Arguments are those of :class:`WSSSVOCDataset`: the
    VOC directories are the default ``data_prefix``.
    """
    METAINFO = dict(
        classes=SYNTHVOC_CLASSES,
        palette=voc_palette(len(SYNTHVOC_CLASSES)).tolist())
    CLASSES_FILE = 'classes.txt'
