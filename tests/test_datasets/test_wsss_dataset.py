"""WSSS datasets: tags from masks or tag files, optional maps, configs, and
the bad-input errors."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from rca_mm.datasets import (COCO_CLASSES, SYNTHVOC_CLASSES, SynthVOCDataset,
                             WSSSCOCODataset, WSSSVOCDataset)
from rca_mm.registry import DATASETS
from ..conftest import REPO
from .wsss_fixtures import box_mask, write_list, write_png_layout

VOC_CFG = osp.join(REPO, 'configs/_base_/datasets/voc12_cls.py')


def _voc_cfg(root, split='train_dataloader'):
    cfg = Config.fromfile(VOC_CFG)
    cfg.merge_from_dict({f'{split}.dataset.data_root': root})
    init_default_scope('rca_mm')
    return cfg[split].dataset


def _tags_from_masks_by_hand(root, names):
    out = []
    for n in names:
        m = np.array(
            Image.open(osp.join(root, 'SegmentationClassAug', n + '.png')))
        out.append(sorted(int(v) - 1 for v in np.unique(m) if 0 < v < 255))
    return out


def test_voc_config_tags_match_masks(voc_root):
    ds = DATASETS.build(_voc_cfg(voc_root))
    assert isinstance(ds, WSSSVOCDataset)
    with open(osp.join(voc_root, 'ImageSets/Segmentation/train_aug.txt')) as f:
        names = f.read().split()
    assert len(ds) == len(names) == 16
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['img_name'] for i in infos] == names
    assert [i['img_labels']
            for i in infos] == _tags_from_masks_by_hand(voc_root, names)
    info = infos[3]
    assert info['sample_idx'] == 3 and info['seg_fields'] == []
    assert info['img_path'] == osp.join(voc_root, 'JPEGImages',
                                        names[3] + '.jpg')
    assert info['sal_path'] == osp.join(voc_root, 'SaliencyMaps',
                                        names[3] + '.png')
    assert ds.num_fg_classes == 20 and info['num_fg_classes'] == 20
    # Packed training sample: the shared interface.
    sample = ds[3]
    assert sample['inputs'].shape == (3, 321, 321)
    assert str(sample['inputs'].dtype) == 'torch.uint8'
    ds_sample = sample['data_samples']
    expected = np.zeros(20, np.float32)
    expected[info['img_labels']] = 1
    np.testing.assert_array_equal(ds_sample.gt_img_labels.numpy(), expected)
    assert ds_sample.gt_saliency.data.shape == (1, 321, 321)
    assert ds_sample.img_name == names[3] and ds_sample.sample_idx == 3
    assert 'gt_sem_seg' not in ds_sample  # not loaded for training


def test_voc_test_split_packs_full_size_maps(voc_root):
    ds = DATASETS.build(_voc_cfg(voc_root, 'test_dataloader'))
    sample = ds[0]['data_samples']
    mask = np.array(
        Image.open(
            osp.join(voc_root, 'SegmentationClassAug',
                     sample.img_name + '.png')))
    np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), mask)
    sal = np.array(
        Image.open(
            osp.join(voc_root, 'SaliencyMaps', sample.img_name + '.png')))
    np.testing.assert_allclose(sample.gt_saliency.data[0].numpy(), sal / 255.)
    assert sample.ori_shape == (64, 64)
    val = DATASETS.build(_voc_cfg(voc_root, 'val_dataloader'))
    assert len(val) == 4


def test_tag_file_without_masks(tmp_path, voc_root):
    names = ['2007_000000', '2007_000001', '2007_000002']
    root = str(tmp_path / 'voc')
    shutil.copytree(
        osp.join(voc_root, 'JPEGImages'), osp.join(root, 'JPEGImages'))
    os.makedirs(osp.join(root, 'ImageSets/Segmentation'))
    write_list(root, 'train', names)
    with open(osp.join(root, 'tags.txt'), 'w') as f:
        # extension and an image outside the list are accepted
        f.write('2007_000000.jpg 14 0\n2007_000001 3\n'
                '2007_000002 19 19\n2007_000009 4\n')
    ds = WSSSVOCDataset(
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        cls_label_file='tags.txt',
        pipeline=[])
    assert [ds.get_data_info(i)['img_labels'] for i in range(3)] == [[0, 14],
                                                                     [3], [19]]
    assert ds.get_data_info(0)['seg_map_path'] is None
    assert ds.get_data_info(0)['sal_path'] is None


def test_coco_and_synthvoc_classes(tmp_path):
    assert len(COCO_CLASSES) == 81 and COCO_CLASSES[1] == 'person'
    assert COCO_CLASSES[80] == 'toothbrush'
    root = write_png_layout(
        str(tmp_path / 's'), {
            'a': box_mask(16, 16, [(3, 0, 8, 0, 8)]),
            'b': box_mask(16, 16, [(1, 4, 12, 4, 12), (2, 0, 2, 0, 2)])
        })
    ds = SynthVOCDataset(
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        img_suffix='.png')
    assert ds.metainfo['classes'] == SYNTHVOC_CLASSES
    assert [ds.get_data_info(i)['img_labels'] for i in range(2)] == [[2],
                                                                     [0, 1]]
    with open(osp.join(root, 'classes.txt'), 'w') as f:
        f.write('background\nsquare\ndisc\ntriangle\n')
    ds = SynthVOCDataset(
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        img_suffix='.png')
    assert ds.metainfo['classes'] == ('background', 'square', 'disc',
                                      'triangle')
    assert ds.num_fg_classes == 3 and len(ds.metainfo['palette']) == 4
    coco = WSSSCOCODataset(
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        img_suffix='.png',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassAug'))
    assert coco.num_fg_classes == 80


def _layout(tmp_path, **masks):
    masks = masks or {
        'a': box_mask(16, 16, [(1, 0, 8, 0, 8)]),
        'b': box_mask(16, 16, [(2, 4, 12, 4, 12)])
    }
    return write_png_layout(str(tmp_path / 'd'), masks)


def _build(root, **kwargs):
    kwargs.setdefault('ann_file', 'ImageSets/Segmentation/train.txt')
    return WSSSVOCDataset(
        data_root=root, img_suffix='.png', pipeline=[], **kwargs)


def test_missing_image_and_list_files(tmp_path):
    root = _layout(tmp_path)
    os.remove(osp.join(root, 'JPEGImages', 'b.png'))
    with pytest.raises(FileNotFoundError, match=r"1 of the 2 images.*b\.png"):
        _build(root)
    with pytest.raises(FileNotFoundError, match='nope.txt.*does not exist'):
        _build(root, ann_file='nope.txt')
    write_list(root, 'empty', [])
    with pytest.raises(ValueError, match='empty.txt.*is empty'):
        _build(root, ann_file='ImageSets/Segmentation/empty.txt')
    with pytest.raises(ValueError, match='ann_file'):
        _build(root, ann_file='')


def test_missing_masks_or_saliency(tmp_path):
    root = _layout(tmp_path)
    os.remove(osp.join(root, 'SaliencyMaps', 'a.png'))
    with pytest.raises(FileNotFoundError, match=r"a\.png.*sal_path"):
        _build(root)
    shutil.rmtree(osp.join(root, 'SaliencyMaps'))
    assert _build(root).get_data_info(0)['sal_path'] is None
    shutil.rmtree(osp.join(root, 'SegmentationClassAug'))
    with pytest.raises(FileNotFoundError, match='cls_label_file'):
        _build(root)


def test_mask_with_unknown_class_id(tmp_path):
    root = _layout(tmp_path, a=box_mask(8, 8, [(21, 0, 4, 0, 4)]))
    with pytest.raises(ValueError, match=r"a\.png.*value\(s\) \[21\]"):
        _build(root)


@pytest.mark.parametrize('mode', ['I;16', 'RGB'])
def test_16bit_or_colour_mask(tmp_path, mode):
    root = _layout(tmp_path)
    path = osp.join(root, 'SegmentationClassAug', 'a.png')
    arr = np.array(Image.open(path))
    if mode == 'I;16':
        Image.fromarray(arr.astype(np.uint16)).save(path)
        match = '16/32-bit'
    else:
        Image.fromarray(np.repeat(arr[..., None], 3, 2)).save(path)
        match = 'colour'
    with pytest.raises(ValueError, match=rf"a\.png.*{match}"):
        _build(root)


def test_images_without_tags(tmp_path):
    root = _layout(
        tmp_path,
        a=box_mask(8, 8, [(1, 0, 4, 0, 4)]),
        b=box_mask(8, 8, [(255, 0, 4, 0, 4)]),
        c=box_mask(8, 8, []))
    ds = _build(root)
    assert [ds.get_data_info(i)['img_name'] for i in range(len(ds))] == ['a']
    assert len(_build(root, empty_tags='keep')) == 3
    with pytest.raises(ValueError, match=r"2 image\(s\).*\['b', 'c'\]"):
        _build(root, empty_tags='error')
    with pytest.raises(ValueError, match='empty_tags'):
        _build(root, empty_tags='drop')


def test_bad_tag_files(tmp_path):
    root = _layout(tmp_path)
    tag = osp.join(root, 'tags.txt')

    def build_with(text):
        with open(tag, 'w') as f:
            f.write(text)
        return _build(root, cls_label_file='tags.txt')

    with pytest.raises(ValueError, match=r'tags.txt:2: unknown class id.*20'):
        build_with('a 0\nb 20\n')
    with pytest.raises(ValueError, match=r'tags.txt:1: class ids must be'):
        build_with('a dog\nb 1\n')
    with pytest.raises(ValueError, match=r"no line in the tag file.*\['b'\]"):
        build_with('a 0\nz 1\n')
    with pytest.raises(ValueError, match="tags.txt:2: image 'a' is listed"):
        build_with('a 0\na 1\nb 1\n')
    with pytest.raises(FileNotFoundError, match='cls_label_file'):
        _build(root, cls_label_file='missing.txt')
    ds = build_with('b 4 2\na 0\n')
    assert [ds.get_data_info(i)['img_labels'] for i in range(2)] == [[0],
                                                                     [2, 4]]


def test_data_root_redirect_of_every_base_config():
    for name in ('voc12_cls', 'coco14_cls', 'synthvoc_cls'):
        cfg = Config.fromfile(
            osp.join(REPO, f'configs/_base_/datasets/{name}.py'))
        cfg.merge_from_dict({
            f'{k}.dataset.data_root': f'/x/{k}'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        })
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            ds = cfg[k].dataset
            assert ds.data_root == f'/x/{k}'
            assert all(not osp.isabs(p) for p in ds.data_prefix.values())
            assert not osp.isabs(ds.ann_file)
        assert cfg.train_dataloader.sampler == dict(
            type='DefaultSampler', shuffle=True)
        assert cfg.num_classes == {
            'voc12_cls': 20,
            'coco14_cls': 80,
            'synthvoc_cls': 10
        }[name]
        assert not any(t['type'] == 'Resize' for t in cfg.test_pipeline)


def test_synthvoc_config_on_generated_data(tmp_path):
    from rca_mm.datasets.synthetic import generate_synthvoc
    root = str(tmp_path / 'synthvoc')
    generate_synthvoc(
        root,
        num_train=4,
        num_val=2,
        num_train_subset=2,
        num_classes=4,
        show_progress=False)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/synthvoc_cls.py'))
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': root})
    init_default_scope('rca_mm')
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    assert ds.num_fg_classes == 4 and len(ds) >= 1
    with open(osp.join(root, 'classes.txt')) as f:
        assert ds.metainfo['classes'] == tuple(f.read().split('\n')[:-1])
    sample = ds[0]
    assert sample['inputs'].shape == (3, 112, 112)
    assert sample['data_samples'].gt_img_labels.shape == (4, )
    assert sample['data_samples'].gt_saliency.data.shape == (1, 112, 112)
