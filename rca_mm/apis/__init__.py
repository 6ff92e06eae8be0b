"""Inference on images and release files: ``init_model``, ``CAMInferencer``
and the publishing of trained checkpoints; one training
run (``run_train``), one test run (``run_test``)."""
from .cam_inferencer import CAMInferencer
from .inference import init_model, load_checkpoint_strictly
from .publish import publish, publish_checkpoint, release_run
from .test import num_failed, run_test
from .train import run_train

__all__ = [
    'init_model', 'load_checkpoint_strictly', 'CAMInferencer', 'publish',
    'publish_checkpoint', 'release_run', 'run_train', 'run_test', 'num_failed'
]
