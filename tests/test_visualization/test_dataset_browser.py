"""The browse_dataset panels on a tiny lossless dataset: what the model
receives after the pipeline, saliency and label aligned with the image."""
import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from rca_mm.registry import DATASETS, TRANSFORMS
from rca_mm.visualization import WSSSLocalVisualizer
from rca_mm.visualization.dataset_browser import (class_list_panel,
                                                  draw_sample, sample_classes,
                                                  sample_image, sample_panels)
from tests.test_datasets.wsss_fixtures import box_mask, write_png_layout

CLASSES = ('background', 'a', 'b', 'c')
H, W = 24, 32
TITLE = 14


@TRANSFORMS.register_module(force=True)
class _FlipImageOnly(BaseTransform):
    """The classic bug: a flip of the image that leaves its maps alone."""

    def transform(self, results):
        results['img'] = results['img'][:, ::-1].copy()
        return results


def build(root, flip):
    init_default_scope('rca_mm')
    return DATASETS.build(
        dict(
            type='WSSSDataset',
            data_root=root,
            ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(
                img_path='JPEGImages',
                seg_map_path='SegmentationClassAug',
                sal_path='SaliencyMaps'),
            img_suffix='.png',
            metainfo=dict(classes=CLASSES),
            pipeline=[
                dict(type='LoadWSSSImageFromFile'),
                dict(type='LoadSaliencyMap'),
                dict(type='LoadWSSSAnnotations'), flip,
                dict(type='PackWSSSInputs')
            ]))


@pytest.fixture(scope='module')
def layout(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('browse'))
    # One object of class 2 at the left: a flip moves it to the right.
    write_png_layout(root, {'img0': box_mask(H, W, [(2, 4, 20, 2, 12)])})
    return root


@pytest.fixture(scope='module')
def visualizer():
    vis = WSSSLocalVisualizer('test_dataset_browser', title_height=TITLE)
    vis.dataset_meta = dict(
        classes=CLASSES,
        palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]])
    return vis


def test_saliency_and_label_follow_the_flip(layout, visualizer):
    dataset = build(layout, dict(type='RandomFlip', prob=1.0))
    item = dataset[0]
    source = np.asarray(Image.open(f'{layout}/JPEGImages/img0.png'))
    mask = box_mask(H, W, [(2, 4, 20, 2, 12)])
    panels = dict(sample_panels(visualizer, item))
    assert list(panels) == [
        'image', 'tags', 'saliency', 'saliency on image', 'label'
    ]
    image = panels['image']
    np.testing.assert_array_equal(image, source[:, ::-1])  # flipped
    # The saliency map of the fixture is the image's grey value: aligned
    # after the flip, it is the image pixel for pixel.
    np.testing.assert_array_equal(panels['saliency'], image)
    # The overlay is jet(saliency) blended with that same image.
    expected = visualizer.draw_heatmap(
        np.asarray(source[:, ::-1, 0], np.float32) / 255,
        image,
        value_range=(0., 1.))
    np.testing.assert_array_equal(panels['saliency on image'], expected)
    # The label is drawn in the palette where the flipped mask has class 2.
    np.testing.assert_array_equal(
        panels['label'], visualizer.draw_label_map(image, mask[:, ::-1]))
    obj = mask[:, ::-1] == 2
    assert (panels['label'][obj] != image[obj]).any(axis=-1).all()
    assert (panels['label'][~obj & (mask[:, ::-1] == 0)]
            != panels['label'][obj][0]).any(axis=-1).all()

    drawn = draw_sample(visualizer, item)
    assert drawn.shape == (TITLE + H, 5 * W, 3)
    np.testing.assert_array_equal(drawn[TITLE:, :W], image)
    np.testing.assert_array_equal(drawn[TITLE:, 2 * W:3 * W], image)


def test_a_flip_of_the_image_alone_shows(layout, visualizer):
    dataset = build(layout, dict(type='_FlipImageOnly'))
    panels = dict(sample_panels(visualizer, dataset[0]))
    # The saliency stayed where it was: it is the unflipped image.
    assert (panels['saliency'] != panels['image']).any()
    np.testing.assert_array_equal(panels['saliency'], panels['image'][:, ::-1])


def test_tags_panel_names_the_tags_in_their_colours(layout, visualizer):
    dataset = build(layout, dict(type='RandomFlip', prob=0.))
    item = dataset[0]
    assert sample_classes(item['data_samples']) == [2]
    panel = class_list_panel(visualizer, [2], (H, W))
    swatch = panel[2:10, 2:10]
    assert (swatch == [0, 128, 0]).all(axis=-1).all()
    assert (panel[:, 16:] < 200).any()  # the name is written beside it
    blank = class_list_panel(visualizer, [], (H, W))
    assert (blank == 255).all()


def test_stage2_sample_without_tags(visualizer):
    labels = np.zeros((H, W), np.int64)
    labels[2:6, 3:9] = 3
    labels[0, 0] = 255
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels)[None])
    bgr = np.zeros((3, H, W), np.uint8)
    bgr[0] = 200  # blue in BGR
    item = dict(inputs=torch.from_numpy(bgr), data_samples=sample)
    assert sample_classes(sample) == [3]
    image = sample_image(item)
    assert (image[..., 2] == 200).all() and (image[..., :2] == 0).all()
    panels = dict(sample_panels(visualizer, item))
    assert list(panels) == ['image', 'classes', 'label']
    np.testing.assert_array_equal(panels['label'],
                                  visualizer.draw_label_map(image, labels))


def test_a_map_of_another_size_is_an_error(visualizer):
    sample = SegDataSample(metainfo=dict(img_path='x/img0.png'))
    sample.gt_saliency = PixelData(data=torch.zeros(1, H, W + 1))
    item = dict(
        inputs=torch.zeros(3, H, W, dtype=torch.uint8), data_samples=sample)
    with pytest.raises(
            ValueError,
            match=r'gt_saliency of x/img0.png is '
            r'\(24, 33\) but the image is \(24, 32\)'):
        sample_panels(visualizer, item)
