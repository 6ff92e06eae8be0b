"""Metrics: pseudo labels from CAMs, both mIoU protocols."""
from .pseudo_label_metric import PseudoLabelMetric  # noqa: F401
