"""Inference on images and release files: ``init_model``, ``CAMInferencer``
and the publishing of trained checkpoints; one test run (``run_test``)."""
from .cam_inferencer import CAMInferencer, recipe_config
from .inference import init_model, load_checkpoint_strictly
from .publish import publish, publish_checkpoint, release_run
from .test import num_failed, run_test

__all__ = [
    'init_model', 'load_checkpoint_strictly', 'CAMInferencer', 'recipe_config',
    'publish', 'publish_checkpoint', 'release_run', 'run_test', 'num_failed'
]
