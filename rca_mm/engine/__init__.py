"""Hooks and other runner parts."""
# rca_mm's registries search mmseg's as parents, which reads their module
# tables without importing mmseg's packages: import them here, where
# rca_mm.registry's `locations` lead.
import mmseg.engine  # noqa: F401

from . import hooks, optimizers  # noqa: F401
