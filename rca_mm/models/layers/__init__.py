"""Layers of the RCA head: pseudo-region pooling (Eq. 2) and the
aggregation with class prototypes (Eq. 7-8)."""
from .prototype_aggregation import PrototypeAggregation
from .pseudo_regions import masked_region_features

__all__ = ['PrototypeAggregation', 'masked_region_features']
