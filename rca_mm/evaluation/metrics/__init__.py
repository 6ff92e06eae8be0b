"""Metrics: the pseudo labels' mIoU protocols, and their writer."""
from .pseudo_label_metric import PseudoLabelMetric  # noqa: F401
from .pseudo_label_writer import PseudoLabelWriter  # noqa: F401
