"""Stage 2 through mmseg's MMSegInferencer: CRFEncoderDecoder's CRF-refined
prediction of an image file, with the checkpoint's class names."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmseg.apis import MMSegInferencer

from rca_mm.apis import init_model
from rca_mm.apis.inference import load_config
from rca_mm.datasets.metainfo import SYNTHVOC_CLASSES
from rca_mm.fileio import voc_palette
from rca_mm.models.postprocess.dense_crf import (DEEPLABV2_CRF_PARAMS,
                                                 dense_crf_batch)
from rca_mm.registry import MODELS
from rca_mm.utils import register_all_modules
from tests.conftest import REPO

STAGE2 = osp.join(
    REPO, 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py')


@pytest.fixture(scope='module')
def stage2_ckpt(tmp_path_factory):
    register_all_modules()
    torch.manual_seed(0)
    cfg = load_config(STAGE2, {'model.backbone.init_cfg': None})
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('stage2') / 'iter_1000.pth')
    meta = dict(
        classes=SYNTHVOC_CLASSES,
        palette=voc_palette(len(SYNTHVOC_CLASSES)).tolist())
    torch.save(
        dict(state_dict=model.state_dict(), meta=dict(dataset_meta=meta)),
        path)
    return path


def test_mmseg_inferencer_gives_the_crf_prediction(stage2_ckpt, images,
                                                   tmp_path):
    inferencer = MMSegInferencer(
        STAGE2, stage2_ckpt, device='cpu', scope='rca_mm')
    assert inferencer.model.crf_params == DEEPLABV2_CRF_PARAMS
    preds = inferencer(images[:2], return_datasamples=True, batch_size=2)
    assert len(preds) == 2
    for path, pred in zip(images, preds):
        logits = pred.seg_logits.data
        assert logits.shape == (11, 40, 48)
        # pred_sem_seg is the dense CRF of the network's softmax on the
        # image file, with DeepLabV2's parameters.
        (crf, ) = dense_crf_batch([path], [torch.softmax(logits, 0).numpy()],
                                  return_labels=True,
                                  **DEEPLABV2_CRF_PARAMS)
        np.testing.assert_array_equal(pred.pred_sem_seg.data[0].numpy(), crf)
    # The weights are the checkpoint's, as init_model loads them strictly.
    model = init_model(
        STAGE2, stage2_ckpt, cfg_options={'model.backbone.init_cfg': None})
    for key, value in model.state_dict().items():
        assert torch.equal(value, inferencer.model.state_dict()[key]), key
    out = inferencer(images[0], out_dir=str(tmp_path))
    assert out['predictions'].shape == (40, 48)
    assert osp.isfile(tmp_path / 'vis' / 'img0.png')
    assert inferencer.visualizer.dataset_meta['classes'] == SYNTHVOC_CLASSES


def test_array_inputs_need_the_crf_off(stage2_ckpt, images):
    """The CRF reads the original image from its file: an array input is an
    error naming the key; with the CRF off it is predicted."""
    from mmengine.config import Config
    image = np.zeros((40, 48, 3), np.uint8)
    inferencer = MMSegInferencer(
        STAGE2, stage2_ckpt, device='cpu', scope='rca_mm')
    with pytest.raises(KeyError, match='model.test_cfg.crf needs `img_path`'):
        inferencer(image)
    cfg = Config.fromfile(STAGE2)
    cfg.model.test_cfg.crf = None
    plain = MMSegInferencer(cfg, stage2_ckpt, device='cpu', scope='rca_mm')
    pred = plain(image, return_datasamples=True)
    np.testing.assert_array_equal(pred.pred_sem_seg.data[0].numpy(),
                                  pred.seg_logits.data.argmax(0).numpy())
