"""CAMInferencer: the model's own CAMs, tags by score and pseudo label
(model.test_cfg.pseudo_label), the files it writes, and its errors on bad
input."""
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from PIL import Image

from rca_mm.apis import CAMInferencer
from rca_mm.apis.inference import load_config
from rca_mm.evaluation.recipes import BackgroundMapRecipe, ThresholdRecipe
from rca_mm.fileio import load_cam_npz, read_label_png
from rca_mm.registry import MODELS, TRANSFORMS
from .conftest import CAM, NO_PRETRAIN, RCA_EPS, write_image


def own_predict(model, path, tags=None):
    """``model.test_step`` on the image as ``tools/test.py`` runs it, with
    the tags' ids (or none)."""
    pipeline = Compose([
        TRANSFORMS.build(dict(type='LoadWSSSImageFromFile')),
        TRANSFORMS.build(
            dict(type='PackWSSSInputs', num_classes=model.num_classes))
    ])
    packed = pipeline(dict(img_path=path, img_labels=tags or []))
    sample = packed['data_samples']
    if tags is None:
        del sample.gt_img_labels
    with torch.no_grad():
        return model.test_step(
            dict(inputs=[packed['inputs']], data_samples=[sample]))[0]


@pytest.fixture(scope='module')
def rca(rca_eps_ckpt):
    model, ckpt = rca_eps_ckpt
    return model, CAMInferencer(
        RCA_EPS,
        ckpt,
        device='cpu',
        cfg_options=NO_PRETRAIN,
        show_progress=False)


def test_cams_tags_and_label_are_the_models_own(rca, images):
    model, inferencer = rca
    result = inferencer(images[0])['predictions']
    ref = own_predict(model, images[0])
    scores = ref.pred_score.numpy()
    np.testing.assert_allclose(result['scores'], scores, rtol=0, atol=1e-6)
    # Tags: the classes scored above model.test_cfg.score_thr (0.5).
    assert inferencer.score_thr == 0.5
    kept = np.flatnonzero(scores > 0.5)
    assert 0 < len(kept) < 10  # the fixture's weights spread the scores
    np.testing.assert_array_equal(result['class_ids'], kept + 1)
    assert result['tags'] == [inferencer.classes[i + 1] for i in kept]
    assert not result['tags_given']
    # O (Eq. 10): predict's CAMs of those classes; the others are zero.
    cams = ref.pred_cams.data.numpy()
    np.testing.assert_allclose(result['cams'], cams[kept], atol=1e-6)
    assert not cams[np.setdiff1d(np.arange(10), kept)].any()
    assert result['cams'].shape == (len(kept), 40, 48)
    assert np.allclose(result['cams'].max(axis=(1, 2)), 1)
    bg = ref.pred_bg.data.numpy()[0]
    np.testing.assert_allclose(result['bg'], bg, atol=1e-6)
    # The pseudo label: predict's pred_sem_seg, by the config's recipe
    # (EPS: the background map).
    assert inferencer.recipe is inferencer.model.pseudo_label
    assert isinstance(inferencer.recipe, BackgroundMapRecipe)
    expected = BackgroundMapRecipe()(cams[kept], kept + 1, bg_map=bg)
    np.testing.assert_array_equal(result['pseudo_label'], expected)
    np.testing.assert_array_equal(result['pseudo_label'],
                                  ref.pred_sem_seg.data[0].numpy())
    assert set(np.unique(expected)) <= set(kept + 1) | {0}


def test_coarse_cams_are_p_of_the_same_tags(rca, rca_eps_ckpt, images):
    model, inferencer = rca
    result = inferencer(images[1])['predictions']
    # P (Eq. 1) from a model without aggregation: the same weights, whose
    # final maps are P.
    cfg = load_config(RCA_EPS,
                      dict(NO_PRETRAIN, **{'model.head.use_rsa': False}))
    coarse = MODELS.build(cfg.model).eval()
    state = {
        k: v
        for k, v in model.state_dict().items()
        if 'aggregation' not in k and 'classifier_o' not in k
    }
    coarse.load_state_dict(state, strict=True)
    tags = [i - 1 for i in result['class_ids']]
    ref = own_predict(coarse, images[1], tags=tags)
    np.testing.assert_allclose(
        result['cams_p'], ref.pred_cams.data.numpy()[tags], atol=1e-6)
    assert not np.allclose(result['cams_p'], result['cams'], atol=1e-3)


def test_given_tags_and_threshold(rca, rca_eps_ckpt, images):
    model, inferencer = rca
    result = inferencer(images[0], tags=['cat', 'aeroplane'])['predictions']
    assert result['tags'] == ['aeroplane', 'cat'] and result['tags_given']
    ref = own_predict(model, images[0], tags=[0, 4])
    np.testing.assert_allclose(
        result['cams'], ref.pred_cams.data.numpy()[[0, 4]], atol=1e-6)
    strict = CAMInferencer(
        RCA_EPS,
        rca_eps_ckpt[1],
        device='cpu',
        cfg_options=NO_PRETRAIN,
        score_thr=0.9,
        show_progress=False)
    high = strict(images[0], draw=False)['predictions']
    np.testing.assert_array_equal(high['class_ids'],
                                  np.flatnonzero(high['scores'] > 0.9) + 1)
    assert len(high['class_ids']) < len(
        inferencer(images[0], draw=False)['predictions']['class_ids'])


def test_folder_batches_and_files(rca, images, tmp_path):
    _, inferencer = rca
    folder = osp.dirname(images[0])
    one_by_one = [inferencer(p, draw=False)['predictions'] for p in images]
    out = str(tmp_path / 'out')
    result = inferencer(folder, batch_size=2, out_dir=out)
    preds = result['predictions']
    assert [p['name'] for p in preds] == ['img0', 'img1', 'img2']
    for pred, single in zip(preds, one_by_one):
        np.testing.assert_allclose(pred['cams'], single['cams'], atol=1e-5)
        np.testing.assert_array_equal(pred['pseudo_label'],
                                      single['pseudo_label'])
    for pred, vis in zip(preds, result['visualization']):
        name = pred['name']
        label = read_label_png(osp.join(out, 'pseudo_labels', name + '.png'))
        np.testing.assert_array_equal(label, pred['pseudo_label'])
        class_ids, cams = load_cam_npz(osp.join(out, 'cams', name + '.npz'))
        np.testing.assert_array_equal(class_ids, pred['class_ids'])
        np.testing.assert_allclose(cams, pred['cams'], atol=1e-3)
        with np.load(osp.join(out, 'cams', name + '.npz')) as npz:
            np.testing.assert_allclose(
                npz['cams_p'], pred['cams_p'], atol=1e-3)
            np.testing.assert_allclose(npz['bg'], pred['bg'], atol=1e-3)
            np.testing.assert_allclose(npz['scores'], pred['scores'])
            assert list(npz['classes']) == list(inferencer.classes[1:])
        drawn = np.asarray(Image.open(osp.join(out, 'vis', name + '.png')))
        np.testing.assert_array_equal(drawn, vis)
        # Two rows (O with the background map and the label; P), each a
        # title band above panels of the image's size.
        k = len(pred['class_ids'])
        assert vis.shape == (2 * (14 + 40), (k + 3) * 48, 3)


def test_ignore_pixels_are_kept_in_the_png(cam_ckpt, images, tmp_path):
    """A recipe's 255 pixels stay 255 in the written label (the saliency
    recipe: background where the saliency is not low enough is 255)."""
    model, ckpt = cam_ckpt
    sal = np.zeros((40, 48), np.uint8)
    sal[5:35, 5:40] = 128
    sal_path = str(tmp_path / 'img0.png')
    Image.fromarray(sal).save(sal_path)
    options = dict(
        NO_PRETRAIN, **{
            'model.test_cfg.pseudo_label':
            dict(_delete_=True, type='SaliencyRecipe', min_fg_ratio=0.0)
        })
    inferencer = CAMInferencer(
        CAM, ckpt, device='cpu', cfg_options=options, show_progress=False)
    with pytest.raises(ValueError, match='saliency map of every image'):
        inferencer(images[0])
    out = str(tmp_path / 'out')
    pred = inferencer(images[0], saliency=sal_path, out_dir=out)['predictions']
    assert (pred['pseudo_label'] == 255).any()
    np.testing.assert_array_equal(
        read_label_png(osp.join(out, 'pseudo_labels', 'img0.png')),
        pred['pseudo_label'])
    bad = str(tmp_path / 'small.png')
    Image.fromarray(sal[:20]).save(bad)
    with pytest.raises(ValueError, match='small.png.*20x48'):
        inferencer(images[0], saliency=bad)


def test_cam_baseline_uses_the_threshold_recipe(cam_ckpt, images):
    model, ckpt = cam_ckpt
    inferencer = CAMInferencer(
        CAM, ckpt, device='cpu', cfg_options=NO_PRETRAIN, show_progress=False)
    pred = inferencer(images[2], draw=False)['predictions']
    assert 'cams_p' not in pred and pred['bg'] is None
    ref = own_predict(model, images[2])
    kept = np.flatnonzero(ref.pred_score.numpy() > 0.5)
    cams = ref.pred_cams.data.numpy()[kept]
    np.testing.assert_array_equal(
        pred['pseudo_label'],
        ThresholdRecipe(bg_threshold=0.2)(cams, kept + 1))


def test_without_a_recipe_there_is_no_label(cam_ckpt, images, tmp_path):
    """A config without model.test_cfg.pseudo_label: CAMs and tags, no
    label, no label PNG, no label panel."""
    _, ckpt = cam_ckpt
    inferencer = CAMInferencer(
        CAM,
        ckpt,
        device='cpu',
        cfg_options=dict(NO_PRETRAIN, **{'model.test_cfg.pseudo_label': None}),
        show_progress=False)
    assert inferencer.recipe is None
    out = str(tmp_path / 'out')
    result = inferencer(images[2], out_dir=out)
    pred = result['predictions']
    assert pred['pseudo_label'] is None
    assert not osp.exists(osp.join(out, 'pseudo_labels'))
    assert osp.isfile(osp.join(out, 'cams', 'img2.npz'))
    # image | CAM per tag (no background map, no label, no saliency)
    k = len(pred['class_ids'])
    assert result['visualization'].shape == (14 + 40, (k + 1) * 48, 3)


def test_the_coarse_pass_makes_no_label(rca, images, monkeypatch):
    """RCA's P pass runs predict again; only the first pass labels."""
    _, inferencer = rca
    recipe = inferencer.model.pseudo_label
    calls = []

    class Counted:
        needs_image = recipe.needs_image

        def __call__(self, *args, **kwargs):
            calls.append(1)
            return recipe(*args, **kwargs)

    monkeypatch.setattr(inferencer.model, 'pseudo_label', Counted())
    pred = inferencer(images[0], draw=False)['predictions']
    assert len(calls) == 1 and 'cams_p' in pred
    assert inferencer.model.pseudo_label.__class__ is Counted


def test_a_crf_recipe_needs_image_files(cam_ckpt, images):
    _, ckpt = cam_ckpt
    options = dict(
        NO_PRETRAIN, **{
            'model.test_cfg.pseudo_label':
            dict(_delete_=True, type='ThresholdRecipe', crf=True)
        })
    inferencer = CAMInferencer(
        CAM, ckpt, device='cpu', cfg_options=options, show_progress=False)
    bgr = np.asarray(Image.open(images[0]))[..., ::-1].copy()
    with pytest.raises(ValueError, match='CRF.*pass image files'):
        inferencer(bgr, draw=False)


def test_array_input_equals_file_input(rca, images):
    _, inferencer = rca
    bgr = np.asarray(Image.open(images[0]))[..., ::-1].copy()
    from_array = inferencer(bgr, draw=False)['predictions']
    from_file = inferencer(images[0], draw=False)['predictions']
    np.testing.assert_allclose(from_array['cams'], from_file['cams'])
    with pytest.raises(ValueError, match='uint8'):
        inferencer(bgr.astype(np.float32))


def test_grey_and_rgba_images_are_converted_with_a_warning(
        rca, images, tmp_path):
    _, inferencer = rca
    grey = write_image(str(tmp_path / 'grey.png'), 0, mode='L')
    rgba = write_image(str(tmp_path / 'rgba.png'), 0, mode='RGBA')
    with pytest.warns(UserWarning, match='grey.png.*grey image'):
        pred = inferencer(grey, draw=False)['predictions']
    assert pred['cams'].shape[1:] == (40, 48)
    with pytest.warns(UserWarning, match='rgba.png.*RGBA'):
        pred = inferencer(rgba, draw=False)['predictions']
    # The alpha channel is dropped: the same CAMs as the RGB image.
    np.testing.assert_allclose(
        pred['scores'],
        inferencer(images[0], draw=False)['predictions']['scores'],
        atol=1e-6)
    with pytest.warns(UserWarning, match='grey image'):
        inferencer(np.zeros((40, 48), np.uint8), draw=False)


def test_bad_inputs_name_the_file_or_argument(rca, rca_eps_ckpt, cam_ckpt,
                                              images, tmp_path):
    _, inferencer = rca
    truncated = str(tmp_path / 'truncated.jpg')
    write_image(truncated, 0, size=(64, 64))
    with open(truncated, 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(ValueError, match='truncated.jpg.*truncated'):
        inferencer(truncated)
    with pytest.raises(FileNotFoundError, match='nothere.png'):
        inferencer(str(tmp_path / 'nothere.png'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='holds no image'):
        inferencer(str(empty))
    with pytest.raises(ValueError, match="'kitten' is not a class.*cat"):
        inferencer(images[0], tags=['kitten'])
    with pytest.raises(ValueError, match='2 entries for 3 images'):
        inferencer(osp.dirname(images[0]), tags=[['cat'], ['dog']])
    # A checkpoint of another config: an error naming the file.
    with pytest.raises(
            ValueError,
            match=f'(?s){cam_ckpt[1]}.*does not fit.*size mismatch'):
        CAMInferencer(
            RCA_EPS, cam_ckpt[1], device='cpu', cfg_options=NO_PRETRAIN)
    with pytest.raises(FileNotFoundError, match='none.pth'):
        CAMInferencer(
            RCA_EPS,
            str(tmp_path / 'none.pth'),
            device='cpu',
            cfg_options=NO_PRETRAIN)
    with pytest.raises(TypeError, match='MMSegInferencer'):
        CAMInferencer(
            'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py',
            device='cpu',
            cfg_options=NO_PRETRAIN)


def test_oaa_store_is_replaced_by_the_networks_cams(cam_ckpt, images):
    model, ckpt = cam_ckpt
    options = dict(NO_PRETRAIN, **{'model.test_cfg.oaa_store': '/no/store'})
    with pytest.warns(UserWarning, match='only for the training images'):
        inferencer = CAMInferencer(
            CAM, ckpt, device='cpu', cfg_options=options, show_progress=False)
    pred = inferencer(images[0], draw=False)['predictions']
    np.testing.assert_allclose(
        pred['scores'],
        own_predict(model, images[0]).pred_score.numpy(),
        atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        CAMInferencer(CAM, ckpt, device='cpu', cfg_options=NO_PRETRAIN)


def test_p_reuses_the_backbone_features(rca, images):
    """The P pass runs the head on the first pass's features: the backbone
    runs once per scale and flip batch (3 scales here)."""
    _, inferencer = rca
    calls = []
    backbone = inferencer.model.backbone
    handle = backbone.register_forward_hook(
        lambda module, args, out: calls.append(args[0].shape))
    try:
        inferencer(images[0], draw=False)
    finally:
        handle.remove()
    assert len(calls) == len(inferencer.model.scales) == 3
