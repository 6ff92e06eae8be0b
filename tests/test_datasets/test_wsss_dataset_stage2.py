"""The WSSS datasets in stage 2 (``with_tags=False``): images of a VOC
layout with a pseudo-label directory, the class names, and the label
reader's arrays against mmseg's ``LoadAnnotations``."""
import os
import os.path as osp
import random
import shutil

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from rca_mm.datasets import (SynthVOCDataset, WSSSCOCODataset, WSSSDataset,
                             WSSSVOCDataset)
from rca_mm.datasets.metainfo import SYNTHVOC_CLASSES, VOC_CLASSES
from rca_mm.fileio import save_label_png

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='PackSegInputs')
]


@pytest.fixture
def pseudo_dir(voc_root, tmp_path):
    """Pseudo labels for train_aug: the ground truth with its class ids
    shifted (c -> 4 - c for c in 1..3), so they are recognisably not it."""
    out = tmp_path / 'pseudo'
    out.mkdir()
    names = open(osp.join(
        voc_root, 'ImageSets/Segmentation/train_aug.txt')).read().split()
    for name in names:
        gt = np.array(
            Image.open(
                osp.join(voc_root, 'SegmentationClassAug', name + '.png')))
        label = np.where((gt > 0) & (gt < 255), 4 - gt, gt)
        save_label_png(label, str(out / (name + '.png')))
    return str(out), names


def build(voc_root, seg_dir, **kwargs):
    init_default_scope('rca_mm')
    kwargs.setdefault('pipeline', PIPELINE)
    return WSSSVOCDataset(
        with_tags=False,
        data_root=voc_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path=seg_dir),
        **kwargs)


def test_reads_images_and_pseudo_labels(voc_root, pseudo_dir):
    seg_dir, names = pseudo_dir
    dataset = build(voc_root, seg_dir)  # absolute label dir
    assert len(dataset) == len(names) == 16
    assert dataset.metainfo['classes'] == VOC_CLASSES
    assert len(dataset.metainfo['palette']) == 21
    info = dataset.get_data_info(3)
    assert info['img_name'] == names[3]
    assert info['seg_map_path'] == osp.join(seg_dir, names[3] + '.png')
    sample = dataset[3]['data_samples']
    expected = np.array(Image.open(info['seg_map_path']))
    np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), expected)
    assert sample.img_path == osp.join(voc_root, 'JPEGImages',
                                       names[3] + '.jpg')


def test_validation_on_the_real_labels(voc_root):
    dataset = build(
        voc_root,
        'SegmentationClassAug',  # relative to data_root
        ann_file='ImageSets/Segmentation/val.txt',
        test_mode=True)
    assert len(dataset) == 4
    gt = np.array(
        Image.open(
            osp.join(voc_root, 'SegmentationClassAug',
                     dataset.get_data_info(0)['img_name'] + '.png')))
    np.testing.assert_array_equal(
        dataset[0]['data_samples'].gt_sem_seg.data[0].numpy(), gt)


def test_missing_labels_are_counted_when_the_dataset_is_built(
        voc_root, pseudo_dir):
    seg_dir, names = pseudo_dir
    for i in (5, 9):
        os.remove(osp.join(seg_dir, names[i] + '.png'))
    with pytest.raises(FileNotFoundError) as err:
        build(voc_root, seg_dir)
    msg = str(err.value)
    assert '2 of the 16 images' in msg and 'train_aug.txt' in msg
    assert names[5] + '.png' in msg and names[9] + '.png' in msg
    assert 'train_dataloader.dataset.data_prefix.seg_map_path' in msg


def test_label_removed_after_start_up_names_the_file(voc_root, pseudo_dir):
    seg_dir, names = pseudo_dir
    dataset = build(voc_root, seg_dir)
    os.remove(osp.join(seg_dir, names[5] + '.png'))
    dataset[4]
    with pytest.raises(FileNotFoundError) as err:
        dataset[5]
    assert names[5] + '.png' in str(err.value)
    assert 'does not exist' in str(err.value)


def test_label_of_the_wrong_size_names_both_files(voc_root, pseudo_dir):
    seg_dir, names = pseudo_dir
    save_label_png(
        np.zeros((64, 60), np.uint8), osp.join(seg_dir, names[2] + '.png'))
    dataset = build(voc_root, seg_dir)
    with pytest.raises(ValueError) as err:
        dataset[2]
    msg = str(err.value)
    assert names[2] + '.png' in msg and names[2] + '.jpg' in msg
    assert '60x64' in msg and '64x64' in msg


def test_label_value_out_of_range_names_the_file(voc_root, pseudo_dir):
    seg_dir, names = pseudo_dir
    save_label_png(
        np.full((64, 64), 30, np.uint8), osp.join(seg_dir, names[1] + '.png'))
    dataset = build(voc_root, seg_dir)
    with pytest.raises(ValueError, match=r'value\(s\) \[30\]') as err:
        dataset[1]
    assert names[1] + '.png' in str(err.value)


def test_missing_directory_or_list_fails_at_init(voc_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='seg_map_path'):
        build(voc_root, str(tmp_path / 'not_exported'))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        build(voc_root, 'SegmentationClassAug', ann_file='nope.txt')
    with pytest.raises(ValueError, match='metainfo'):
        build(voc_root, 'SegmentationClassAug', metainfo=dict(classes=('a', )))


def test_class_sets(tmp_path):
    assert WSSSVOCDataset.resolve_classes() == VOC_CLASSES
    assert SynthVOCDataset.resolve_classes(
        data_root=str(tmp_path)) == SYNTHVOC_CLASSES
    (tmp_path / 'classes.txt').write_text('background\nblob\nstar\n')
    assert SynthVOCDataset.resolve_classes(
        data_root=str(tmp_path)) == ('background', 'blob', 'star')
    # only SynthVOC has a classes file
    assert WSSSVOCDataset.resolve_classes(
        data_root=str(tmp_path)) == VOC_CLASSES
    assert SynthVOCDataset.resolve_classes(
        data_root=str(tmp_path),
        metainfo=dict(classes=['bg', 'x'])) == ('bg', 'x')
    assert len(WSSSCOCODataset.resolve_classes()) == 81
    assert WSSSDataset.resolve_classes() is None
    with pytest.raises(ValueError, match='distinct'):
        WSSSVOCDataset.resolve_classes(metainfo=dict(classes=['bg', 'bg']))
    (tmp_path / 'classes.txt').write_text('background\nblob\nblob\n')
    with pytest.raises(ValueError, match='classes.txt.*distinct'):
        SynthVOCDataset.resolve_classes(data_root=str(tmp_path))


def test_cfg_options_key_redirects_the_label_dir(voc_root, pseudo_dir):
    from mmengine.config import Config

    from tests.conftest import REPO
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/voc12_pseudo_seg.py'))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root':
        voc_root,
        'train_dataloader.dataset.data_prefix.seg_map_path':
        pseudo_dir[0],
        'train_dataloader.dataset.pipeline':
        PIPELINE
    })
    init_default_scope('rca_mm')
    from rca_mm.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert isinstance(dataset, WSSSVOCDataset) and not dataset.with_tags
    assert 'img_labels' not in dataset.get_data_info(0)
    assert dataset.data_prefix['seg_map_path'] == pseudo_dir[0]
    assert dataset.data_prefix['img_path'] == osp.join(voc_root, 'JPEGImages')
    assert len(dataset) == 16
    shutil.rmtree(pseudo_dir[0])
    with pytest.raises(FileNotFoundError, match='seg_map_path'):
        DATASETS.build(cfg.train_dataloader.dataset)


def test_images_without_foreground_are_kept(voc_root, pseudo_dir):
    """Stage 2 trains on every listed image: an all-background pseudo label
    is a label like any other (stage 1 would skip the image)."""
    seg_dir, names = pseudo_dir
    save_label_png(
        np.zeros((64, 64), np.uint8), osp.join(seg_dir, names[0] + '.png'))
    dataset = build(voc_root, seg_dir)
    assert len(dataset) == 16
    assert dataset.get_data_info(0)['img_name'] == names[0]
    assert dataset[0]['data_samples'].gt_sem_seg.data.sum() == 0
    with pytest.raises(ValueError, match='with_tags'):
        dataset.get_cat_ids(0)
    with pytest.raises(ValueError, match='cls_label_file=None'):
        build(voc_root, seg_dir, cls_label_file='tags.txt')
    with pytest.raises(ValueError, match='seg_map_path'):
        build(voc_root, None)


def test_label_reader_gives_mmseg_load_annotations_arrays(
        voc_root, pseudo_dir):
    """LoadWSSSAnnotations, stage 2's label reader, returns the array of
    mmseg's LoadAnnotations (reduce_zero_label=False): same dtype, values
    and shape, for palette and grey PNGs, through the whole training
    pipeline of the VOC config."""
    from mmengine.config import Config

    from rca_mm.registry import TRANSFORMS
    from tests.conftest import REPO
    seg_dir, names = pseudo_dir
    grey = np.array(Image.open(osp.join(seg_dir, names[7] + '.png')))
    Image.fromarray(grey, mode='L').save(osp.join(seg_dir, names[7] + '.png'))
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/voc12_pseudo_seg.py'))
    ours = build(voc_root, seg_dir, pipeline=cfg.train_pipeline)
    mmseg_pipeline = [
        dict(t, type='LoadAnnotations', reduce_zero_label=False)
        if t['type'] == 'LoadWSSSAnnotations' else t
        for t in cfg.train_pipeline
    ]
    theirs = build(voc_root, seg_dir, pipeline=mmseg_pipeline)
    for i in range(len(ours)):
        samples = []
        for dataset in (ours, theirs):
            random.seed(i)
            np.random.seed(i)
            samples.append(dataset[i])
        a, b = (s['data_samples'].gt_sem_seg.data for s in samples)
        assert a.dtype == b.dtype and a.equal(b)
        assert samples[0]['inputs'].equal(samples[1]['inputs'])
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    for name in names:
        outs = []
        for t in ('LoadWSSSAnnotations', 'LoadAnnotations'):
            results = load(
                dict(
                    img_path=osp.join(voc_root, 'JPEGImages', name + '.jpg'),
                    seg_map_path=osp.join(seg_dir, name + '.png'),
                    reduce_zero_label=False,
                    seg_fields=[]))
            outs.append(TRANSFORMS.build(dict(type=t))(results))
        a, b = (o['gt_seg_map'] for o in outs)
        assert a.dtype == b.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        assert outs[0]['seg_fields'] == outs[1]['seg_fields'] == ['gt_seg_map']
