"""PackWSSSInputs produces the shared sample; num_classes checks."""
import numpy as np
import pytest
import torch

from rca_mm.datasets import check_num_classes
from rca_mm.datasets.metainfo import VOC_CLASSES
from rca_mm.datasets.transforms import PackWSSSInputs


def _results(**extra):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    res = dict(
        img=img,
        img_path='/d/x.jpg',
        img_name='x',
        sample_idx=7,
        img_labels=[0, 3],
        ori_shape=(2, 3),
        img_shape=(2, 3),
        num_fg_classes=4,
        seg_map_path='/d/x.png')
    res.update(extra)
    return res


def test_pack_sample():
    seg = np.array([[0, 1, 255], [4, 4, 0]], np.uint8)
    sal = np.array([[0., .5, 1.], [.25, 0., 1.]], np.float32)
    out = PackWSSSInputs()(_results(gt_seg_map=seg, gt_saliency=sal))
    inputs, sample = out['inputs'], out['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 2, 3)
    assert inputs[2, 1, 0] == _results()['img'][1, 0, 2]
    assert sample.gt_img_labels.dtype == torch.float32
    assert sample.gt_img_labels.tolist() == [1., 0., 0., 1.]
    assert sample.gt_sem_seg.data.dtype == torch.int64
    assert sample.gt_sem_seg.data.tolist() == [seg.tolist()]
    assert sample.gt_saliency.data.dtype == torch.float32
    assert sample.gt_saliency.data.tolist() == [sal.tolist()]
    assert set(sample.metainfo) == {
        'img_path', 'img_name', 'sample_idx', 'ori_shape', 'img_shape'
    }
    assert sample.sample_idx == 7 and sample.img_name == 'x'
    bare = PackWSSSInputs(num_classes=4)(_results(num_fg_classes=None))
    assert 'gt_sem_seg' not in bare['data_samples']
    assert 'gt_saliency' not in bare['data_samples']


def test_pack_checks_the_number_of_classes():
    with pytest.raises(ValueError, match=r'num_classes=5.*4 foreground'):
        PackWSSSInputs(num_classes=5)(_results())
    with pytest.raises(ValueError, match='pass num_classes'):
        PackWSSSInputs()(_results(num_fg_classes=None))
    with pytest.raises(ValueError, match=r'tags \[6\] of .*x\.jpg'):
        PackWSSSInputs()(_results(img_labels=[6]))


def test_check_num_classes():
    meta = dict(classes=VOC_CLASSES)
    assert check_num_classes(meta, 20) == 20
    with pytest.raises(
            ValueError,
            match=r'model.decode_head.num_classes=21 .* 20 foreground.*'
            r'counts the background'):
        check_num_classes(meta, 21)
    with pytest.raises(ValueError, match=r'head.n=10 .*Set head.n=20'):
        check_num_classes(meta, 10, key='head.n')
    # A segmentation head counts the background; the class file is named.
    assert check_num_classes(meta, 21, with_background=True) == 21
    with pytest.raises(
            ValueError,
            match=r'num_classes=20 but the dataset has 21 classes with the '
            r'background .*in data/classes.txt\) \(the background is a '
            r'class of a segmentation head\)'):
        check_num_classes(
            meta, 20, with_background=True, source='data/classes.txt')
