"""The pseudo-region memory bank (Eq. 3), k-means and prototype aggregation (Eq. 7-9)."""
