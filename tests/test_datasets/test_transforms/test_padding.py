"""Saliency and label maps stay aligned with the image through mmseg's
resize/crop/flip, and PadToSize fills image 0, labels 255, saliency 0."""
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from rca_mm.datasets import WSSSVOCDataset
from rca_mm.datasets.transforms import PadToSize
from ..wsss_fixtures import box_mask, write_png_layout

LOAD = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='LoadSaliencyMap'),
]


def _dataset(tmp_path, masks, pipeline):
    init_default_scope('rca_mm')
    root = write_png_layout(str(tmp_path / 'd'), masks)
    return WSSSVOCDataset(
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        img_suffix='.png',
        pipeline=LOAD + pipeline + [dict(type='PackWSSSInputs')])


def _grey(mask):
    h, w = mask.shape
    rows, cols = np.arange(h)[:, None] // 4, np.arange(w)[None, :] // 4
    return ((7 * rows + 3 * cols + 20 * (mask % 8)) % 250).astype(np.uint8)


def _unpack(sample):
    s = sample['data_samples']
    return (sample['inputs'].numpy(), s.gt_sem_seg.data[0].numpy(),
            s.gt_saliency.data[0].numpy(), s)


def test_pad_then_flip_exact(tmp_path):
    mask = box_mask(16, 20, [(1, 2, 9, 3, 11), (5, 10, 16, 12, 20)])
    ds = _dataset(tmp_path, {'a': mask}, [
        dict(type='RandomCrop', crop_size=(24, 24)),
        dict(type='PadToSize', size=(24, 24)),
        dict(type='RandomFlip', prob=1.0, direction='horizontal'),
    ])
    img, seg, sal, sample = _unpack(ds[0])
    assert img.shape == (3, 24, 24) and seg.shape == sal.shape == (24, 24)
    exp_img = np.zeros((24, 24), np.uint8)
    exp_img[:16, :20] = _grey(mask)
    exp_seg = np.full((24, 24), 255, np.int64)
    exp_seg[:16, :20] = mask
    for c in range(3):
        np.testing.assert_array_equal(img[c], exp_img[:, ::-1])
    np.testing.assert_array_equal(seg, exp_seg[:, ::-1])
    np.testing.assert_allclose(sal, exp_img[:, ::-1] / 255., atol=1e-6)
    assert (sal[16:] == 0).all() and (sal[:, :4] == 0).all()
    assert sample.flip and sample.pad_shape == (24, 24)
    assert sample.img_shape == (16, 20) and sample.ori_shape == (16, 20)
    assert sample.gt_img_labels.tolist()[:6] == [1., 0., 0., 0., 1., 0.]


def test_random_crop_keeps_maps_aligned(tmp_path):
    mask = box_mask(32, 32, [(2, 3, 20, 5, 25), (7, 18, 30, 1, 12)])
    ds = _dataset(tmp_path, {'a': mask}, [
        dict(type='RandomCrop', crop_size=(20, 24)),
        dict(type='PadToSize', size=(20, 24)),
        dict(type='RandomFlip', prob=0.5),
    ])
    grey = _grey(mask)
    for _ in range(6):
        img, seg, sal, sample = _unpack(ds[0])
        if sample.flip:
            img, seg, sal = img[..., ::-1], seg[:, ::-1], sal[:, ::-1]
        offsets = [(y, x) for y in range(13) for x in range(9)
                   if np.array_equal(grey[y:y + 20, x:x + 24], img[0])]
        assert offsets, 'the crop is not a window of the image'
        y, x = offsets[0]
        np.testing.assert_array_equal(seg, mask[y:y + 20, x:x + 24])
        np.testing.assert_allclose(sal, img[0] / 255., atol=1e-6)


def test_resize_moves_saliency_with_the_image(tmp_path):
    mask = box_mask(16, 12, [(3, 4, 12, 0, 8)])
    ds = _dataset(tmp_path, {'a': mask}, [
        dict(
            type='RandomResize',
            scale=(16, 16),
            ratio_range=(2.0, 2.0),
            keep_ratio=True),
    ])
    img, seg, sal, sample = _unpack(ds[0])
    assert img.shape == (3, 32, 24) and seg.shape == sal.shape == (32, 24)
    np.testing.assert_array_equal(seg, np.kron(mask, np.ones((2, 2))))
    # bilinear image vs nearest saliency: at most one grey step apart
    assert np.abs(img[0] / 255. - sal).max() <= 68 / 255.
    assert np.mean(np.abs(img[0] / 255. - sal) < 4 / 255.) > 0.7
    assert sample.scale_factor == (2.0, 2.0)


def test_pad_to_size_values():
    res = dict(
        img=np.full((2, 3, 3), 9, np.uint8),
        gt_seg_map=np.ones((2, 3), np.uint8),
        gt_saliency=np.full((2, 3), .5, np.float32),
        seg_fields=['gt_seg_map', 'gt_saliency'])
    out = PadToSize((3, 5), img_pad_val=(1, 2, 3))(res)
    assert out['img'].shape == (3, 5, 3) and out['pad_shape'] == (3, 5)
    assert out['img'][2, 4].tolist() == [1, 2, 3]
    assert (out['img'][:2, :3] == 9).all()
    assert out['gt_seg_map'][2].tolist() == [255] * 5
    assert out['gt_saliency'][:, 3:].sum() == 0
    assert out['gt_saliency'][:2, :3].sum() == pytest.approx(3.)
    big = PadToSize(2)(dict(img=np.zeros((4, 5, 3), np.uint8), seg_fields=[]))
    assert big['img'].shape == (4, 5, 3)
    with pytest.raises(ValueError, match='size'):
        PadToSize((0, 3))
