"""Post-processing: dense CRF."""
from .dense_crf import (DEEPLABV2_CRF_PARAMS, dense_crf,  # noqa: F401
                        WorkerPool, dense_crf_batch,
                        import_densecrf)
