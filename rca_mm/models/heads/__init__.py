"""Class-aware heads of the stage-1 classifiers: CAM, EPS and RCA."""
from .cam_head import CAMHead  # noqa: F401
from .rca_head import RCAHead  # noqa: F401
