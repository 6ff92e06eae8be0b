"""Visualisation: the registered visualizer and the paper's figures."""
# rca_mm's registries search mmseg's as parents, which reads their module
# tables without importing mmseg's packages: import them here, where
# rca_mm.registry's `locations` lead.
import mmseg.visualization  # noqa: F401

from .rca_figures import (affinity_panels, baseline_maps, cams_at,
                          comparison_panels, rca_maps, select_prototypes)
from .wsss_local_visualizer import WSSSLocalVisualizer

__all__ = [
    'WSSSLocalVisualizer', 'rca_maps', 'baseline_maps', 'cams_at',
    'select_prototypes', 'affinity_panels', 'comparison_panels'
]
