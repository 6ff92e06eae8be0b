"""Stage-2 decode heads (DeepLabV2)."""
from .aspp_v2_head import ASPPV2Head  # noqa: F401
