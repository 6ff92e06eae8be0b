"""The pseudo-region memory bank (Eq. 3), k-means and prototype aggregation (Eq. 7-8)."""
from .kmeans import batched_kmeans  # noqa: F401
from .prototype_aggregation import PrototypeAggregation  # noqa: F401
from .pseudo_regions import masked_region_features  # noqa: F401
from .region_memory_bank import (RegionMemoryBank,  # noqa: F401
                                 empty_bank_state)
