"""The pseudo-region memory bank (Eq. 3) and the k-means of its entries
(Sec. 3.3)."""
from .kmeans import batched_kmeans
from .region_memory_bank import RegionMemoryBank, empty_bank_state

__all__ = ['batched_kmeans', 'RegionMemoryBank', 'empty_bank_state']
