"""The pseudo-region memory bank (Eq. 3), k-means and prototype aggregation
(Eq. 7-8)."""
from .kmeans import batched_kmeans
from .prototype_aggregation import PrototypeAggregation
from .pseudo_regions import masked_region_features
from .region_memory_bank import RegionMemoryBank, empty_bank_state

__all__ = [
    'batched_kmeans', 'PrototypeAggregation', 'masked_region_features',
    'RegionMemoryBank', 'empty_bank_state'
]
