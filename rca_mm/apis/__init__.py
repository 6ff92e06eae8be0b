"""Inference on images and release files: ``init_model``, ``CAMInferencer``
and the publishing of trained checkpoints."""
from .cam_inferencer import CAMInferencer, recipe_config
from .inference import init_model, load_checkpoint_strictly
from .publish import publish, publish_checkpoint, release_run

__all__ = [
    'init_model', 'load_checkpoint_strictly', 'CAMInferencer', 'recipe_config',
    'publish', 'publish_checkpoint', 'release_run'
]
