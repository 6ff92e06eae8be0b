"""Pseudo-label evaluation: recipes, the metric, their functions."""
# rca_mm's registries search mmseg's as parents, which reads their module
# tables without importing mmseg's packages: import them here, where
# rca_mm.registry's `locations` lead.
import mmseg.evaluation  # noqa: F401

from . import functional  # noqa: F401
from . import metrics  # noqa: F401
from . import recipes  # noqa: F401
