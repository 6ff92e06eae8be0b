"""Post-processing: dense CRF."""
from .dense_crf import (DEEPLABV2_CRF_PARAMS, WorkerPool, dense_crf,
                        dense_crf_batch, import_densecrf)

__all__ = [
    'DEEPLABV2_CRF_PARAMS', 'WorkerPool', 'dense_crf', 'dense_crf_batch',
    'import_densecrf'
]
