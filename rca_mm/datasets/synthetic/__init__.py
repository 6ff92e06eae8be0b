"""Procedural datasets: SynthVOC (weakly supervised segmentation, VOC's
layout) and SynthNet (its ImageNet, for pretraining), drawn from one world
and written deterministically, atomically and resumably.

The dataset classes that read them live in :mod:`rca_mm.datasets`; see
``docs/synthvoc.md`` and ``docs/synthnet.md``.
"""
from .synthnet import (build_synthnet_world, generate_synthnet,
                       render_synthnet_sample)
from .synthvoc import generate_synthvoc
from .synthvoc_render import build_world, render_sample

__all__ = [
    'build_synthnet_world', 'generate_synthnet', 'render_synthnet_sample',
    'generate_synthvoc', 'build_world', 'render_sample'
]
