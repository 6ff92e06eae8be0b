"""WSSSLocalVisualizer: the panels of a CAM classifier's sample, and
mmseg's drawing of a segmentor's sample kept."""
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from rca_mm.registry import VISUALIZERS
from rca_mm.visualization import WSSSLocalVisualizer
from tests.conftest import REPO

H, W, BAND = 16, 20, 14
META = dict(
    classes=('background', 'cat', 'dog'),
    palette=[[0, 0, 0], [200, 0, 0], [0, 200, 0]])
GREY = 100


def jet(value):
    """The RGB of jet at a value in [0, 255]."""
    bgr = cv2.applyColorMap(np.array([[value]], np.uint8), cv2.COLORMAP_JET)[0,
                                                                             0]
    return bgr[::-1].astype(float)


def visualizer(name, **kwargs):
    vis = WSSSLocalVisualizer.get_instance(name, **kwargs)
    vis.dataset_meta = META
    return vis


def cam_sample(with_saliency=True, with_bg=False, with_label=True):
    """Tag 'cat' (label 1): its CAM is 1 on rows 2-7 x cols 3-9, 0 elsewhere;
    'dog' is untagged. GT: cat on the same box, a 255 border row above. The
    pseudo label (pred_sem_seg): cat on the box, 255 on its lower row,
    background elsewhere."""
    cams = torch.zeros(2, H, W)
    cams[0, 2:8, 3:10] = 1.0
    sample = SegDataSample(metainfo=dict(img_path='x.jpg'))
    sample.pred_cams = PixelData(data=cams)
    sample.gt_img_labels = torch.tensor([1., 0.])
    gt = torch.zeros(1, H, W, dtype=torch.uint8)
    gt[0, 2:8, 3:10] = 1
    gt[0, 1, 3:10] = 255
    sample.gt_sem_seg = PixelData(data=gt)
    if with_saliency:
        sal = torch.zeros(1, H, W)
        sal[0, 2:8, 3:10] = 0.8
        sample.gt_saliency = PixelData(data=sal)
    if with_bg:
        sample.pred_bg = PixelData(data=1 - cams[:1])
    if with_label:
        label = torch.zeros(1, H, W, dtype=torch.long)
        label[0, 2:8, 3:10] = 1
        label[0, 7, 3:10] = 255
        sample.pred_sem_seg = PixelData(data=label)
    return sample


def panel(drawn, i):
    return drawn[BAND:BAND + H, i * W:(i + 1) * W].astype(float)


def draw(vis, sample, **kwargs):
    image = np.full((H, W, 3), GREY, np.uint8)
    out = {}

    def keep(name, img, step=0):
        out['img'] = img

    vis.add_image = keep
    vis.add_datasample('x', image, sample, with_labels=False, **kwargs)
    return out['img']


def test_cam_panels_heatmap_label_255_saliency_gt():
    vis = visualizer('wsss_vis_all')
    drawn = draw(vis, cam_sample())
    # image | CAM cat | pseudo label | saliency | GT, each under its title.
    assert drawn.shape == (BAND + H, 5 * W, 3)
    np.testing.assert_array_equal(panel(drawn, 0), GREY)
    # CAM: jet's top inside the box, jet's bottom outside, half on the image.
    cam = panel(drawn, 1)
    np.testing.assert_allclose(cam[4, 5], (GREY + jet(255)) / 2, atol=1)
    np.testing.assert_allclose(cam[12, 15], (GREY + jet(0)) / 2, atol=1)
    # Pseudo label (the sample's pred_sem_seg): cat's colour in the box,
    # background's outside, its 255 row in the ignore colour, at the
    # visualizer's alpha.
    a = vis.alpha
    ignore = GREY * (1 - a) + np.array([224, 224, 192]) * a
    label = panel(drawn, 2)
    np.testing.assert_allclose(
        label[4, 5], GREY * (1 - a) + 200 * a * np.array([1, 0, 0]), atol=1)
    np.testing.assert_allclose(label[12, 15], GREY * (1 - a), atol=1)
    np.testing.assert_allclose(label[7, 5], ignore, atol=1)
    # Saliency in grey.
    np.testing.assert_allclose(panel(drawn, 3)[4, 5], 0.8 * 255, atol=1)
    np.testing.assert_allclose(panel(drawn, 3)[12, 15], 0, atol=1)
    # GT: the 255 row in the ignore colour, cat below it.
    gt = panel(drawn, 4)
    np.testing.assert_allclose(gt[1, 5], ignore, atol=1)
    np.testing.assert_allclose(gt[4, 5], label[4, 5], atol=1)
    np.testing.assert_allclose(gt[1, 15], GREY * (1 - a), atol=1)
    # The title band is white but for its text.
    assert (drawn[:BAND] < 128).any() and (drawn[:BAND] == 255).mean() > 0.5


def test_optional_panels_follow_the_sample():
    vis = visualizer('wsss_vis_opt')
    # No pred_sem_seg (a model without test_cfg.pseudo_label): no
    # pseudo-label panel.
    drawn = draw(
        vis, cam_sample(with_saliency=False, with_bg=True, with_label=False))
    # image | CAM cat | background | GT
    assert drawn.shape == (BAND + H, 4 * W, 3)
    bg = panel(drawn, 2)  # the background map is 0 in the box
    np.testing.assert_allclose(bg[4, 5], (GREY + jet(0)) / 2, atol=1)
    np.testing.assert_allclose(bg[12, 15], (GREY + jet(255)) / 2, atol=1)
    # draw_gt=False leaves out the saliency and GT; draw_pred=False the maps
    # and the pseudo label.
    no_gt = draw(vis, cam_sample(), draw_gt=False)
    assert no_gt.shape == (BAND + H, 3 * W, 3)  # image | CAM | label
    no_pred = draw(vis, cam_sample(), draw_pred=False)
    assert no_pred.shape == (BAND + H, 3 * W, 3)  # image | saliency | GT


def test_class_count_mismatch_is_named():
    vis = visualizer('wsss_vis_bad')
    vis.dataset_meta = dict(
        classes=('background', 'cat'), palette=[[0, 0, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match='dataset_meta'):
        draw(vis, cam_sample())


def test_segmentor_sample_is_drawn_as_mmseg_does(tmp_path):
    """Stage 2: a sample with pred_sem_seg gives SegLocalVisualizer's image,
    through the runtime base config's visualizer."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/default_runtime.py'))
    init_default_scope('rca_mm')
    ours = VISUALIZERS.build(dict(cfg.visualizer, name='wsss_vis_base'))
    assert type(ours) is WSSSLocalVisualizer
    mmseg = SegLocalVisualizer.get_instance('wsss_vis_mmseg')
    sample = SegDataSample()
    seg = torch.zeros(1, H, W, dtype=torch.long)
    seg[0, 4:10, 2:8] = 2
    sample.gt_sem_seg = PixelData(data=seg)
    sample.pred_sem_seg = PixelData(data=seg.flip(-1))
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    outs = []
    for i, vis in enumerate((ours, mmseg)):
        vis.dataset_meta = META
        out = str(tmp_path / f'{i}.png')
        vis.add_datasample('x', image, sample, out_file=out)
        outs.append(mmcv.imread(out))
    assert outs[0].shape == (H, 2 * W, 3)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_bad_ignore_color_names_the_key():
    with pytest.raises(ValueError, match='visualizer.ignore_color'):
        WSSSLocalVisualizer.get_instance('wsss_vis_ign', ignore_color=(1, 2))


def test_a_recipe_of_the_visualizer_names_the_model_key():
    """The pseudo label is the model's output: a config that still gives
    the visualizer a recipe is told where the recipe goes."""
    with pytest.raises(ValueError, match='model.test_cfg.pseudo_label'):
        WSSSLocalVisualizer.get_instance(
            'wsss_vis_recipe', recipe=dict(type='ThresholdRecipe'))


def test_heatmap_value_range_fixes_the_colour_scale():
    vis = visualizer('wsss_vis_range')
    image = np.full((H, W, 3), GREY, np.uint8)
    heat = np.zeros((H, W), np.float32)
    heat[2:8, 3:10] = 0.5
    # Min-max: 0.5 is jet's top; on (0, 1): its middle.
    minmax = vis.draw_heatmap(heat, image).astype(float)
    fixed = vis.draw_heatmap(heat, image, (0.0, 1.0)).astype(float)
    np.testing.assert_allclose(minmax[4, 5], (GREY + jet(255)) / 2, atol=1)
    np.testing.assert_allclose(fixed[4, 5], (GREY + jet(127)) / 2, atol=1)
    np.testing.assert_allclose(fixed[12, 15], (GREY + jet(0)) / 2, atol=1)
    # A map smaller than the image is resized to it.
    assert vis.draw_heatmap(heat[::2, ::2], image).shape == (H, W, 3)
