"""Stage-2 decode heads (DeepLabV2)."""
