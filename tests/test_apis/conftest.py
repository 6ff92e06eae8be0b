"""Tiny trained-looking stage-1 checkpoints and images for the API tests."""
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from rca_mm.apis.inference import load_config
from rca_mm.datasets.metainfo import SYNTHVOC_CLASSES
from rca_mm.engine.hooks.rng_state_hook import get_rng_state
from rca_mm.fileio import voc_palette
from rca_mm.registry import MODELS
from rca_mm.utils import register_all_modules
from tests.conftest import REPO

RCA_EPS = osp.join(REPO,
                   'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py')
CAM = osp.join(REPO, 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py')
# No pretrained file is read when building; random init instead.
NO_PRETRAIN = {'model.backbone.init_cfg': None}
DATASET_META = dict(
    classes=SYNTHVOC_CLASSES,
    palette=voc_palette(len(SYNTHVOC_CLASSES)).tolist())


def build_trained(config: str, seed: int = 0):
    """The config's model with random weights whose classifier scores
    spread around 0 (some classes above the 0.5 threshold, some below),
    RCA's prototypes set and its bank filled, as after training."""
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(load_config(config, NO_PRETRAIN).model)
    model.init_weights()
    head = model.head
    with torch.no_grad():
        for conv in (head.classifier, getattr(head, 'classifier_o', None)):
            if conv is not None:
                conv.weight.normal_(0, 0.3)
    if hasattr(head, 'memory_bank'):
        labels = torch.zeros(6, head.num_classes, dtype=torch.bool)
        labels[torch.arange(6), torch.arange(6) % head.num_classes] = True
        head.memory_bank.allocate(labels)
        head.memory_bank.update(
            torch.randn(6, head.memory_bank.feat_dim),
            torch.arange(6) % head.num_classes, torch.arange(6))
        protos = torch.randn_like(head.aggregation.prototypes)
        valid = torch.ones(protos.shape[:2], dtype=torch.bool)
        valid[:, -1] = False
        head.aggregation.set_prototypes(protos, valid)
    return model.eval()


def save_training_checkpoint(model, path: str) -> str:
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                epoch=8,
                seed=0,
                dataset_meta=DATASET_META,
                rng_state=[get_rng_state()]),
            optimizer=dict(state={}, param_groups=[dict(lr=0.1)])), path)
    return path


@pytest.fixture(scope='session')
def rca_eps_ckpt(tmp_path_factory):
    """(model, checkpoint) of RCA on EPS (SynthVOC config)."""
    model = build_trained(RCA_EPS)
    path = str(tmp_path_factory.mktemp('rca') / 'epoch_8.pth')
    return model, save_training_checkpoint(model, path)


@pytest.fixture(scope='session')
def cam_ckpt(tmp_path_factory):
    """(model, checkpoint) of the CAM baseline (SynthVOC config)."""
    model = build_trained(CAM, seed=1)
    path = str(tmp_path_factory.mktemp('cam') / 'epoch_8.pth')
    return model, save_training_checkpoint(model, path)


def write_image(path: str, seed: int, size=(40, 48), mode: str = 'RGB'):
    """A smooth random image (blobs on a gradient), saved as ``mode``."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w, 3), np.float32) + rng.uniform(0, 255, 3)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 15)
        blob = np.exp(-((yy - cy)**2 + (xx - cx)**2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-200, 200, 3)
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    img.convert(mode).save(path)
    return path


@pytest.fixture(scope='session')
def images(tmp_path_factory):
    """A folder of three RGB images of one size."""
    root = tmp_path_factory.mktemp('images')
    return [write_image(str(root / f'img{i}.png'), i) for i in range(3)]
