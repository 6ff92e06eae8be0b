"""Stage-1 CAM classifiers."""
from .cam_classifier import CAMClassifier  # noqa: F401
