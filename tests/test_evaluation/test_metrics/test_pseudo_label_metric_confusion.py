"""PseudoLabelMetric saves the confusion matrix it scores with."""
import os
import os.path as osp

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from rca_mm.evaluation.functional import (confusion_matrix,
                                          summarize_confusion,
                                          threshold_recipe)
from rca_mm.fileio.confusion_json import load_confusion_matrix
from rca_mm.registry import METRICS

CLASSES = ('background', 'a', 'b', 'c')
H, W = 6, 8


def samples(root):
    """Three images with pseudo labels (the threshold recipe on random
    CAMs) and ground truth (255 pixels too)."""
    rng = np.random.default_rng(3)
    out = []
    for i, tags in enumerate([(1, 0, 0), (0, 1, 1), (0, 0, 1)]):
        img_path = osp.join(root, f'img{i}.png')
        Image.fromarray(rng.integers(0, 255, (H, W, 3),
                                     dtype=np.uint8)).save(img_path)
        cams = rng.random((3, H, W)).astype(np.float32)
        cams[np.asarray(tags) == 0] = 0
        gt = rng.integers(0, 4, (H, W))
        gt[0, :3] = 255
        sample = SegDataSample(
            metainfo=dict(img_path=img_path, img_name=f'img{i}'))
        idx = np.flatnonzero(tags)
        labels = threshold_recipe(cams[idx], idx + 1, bg_threshold=0.2)
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(labels)[None])
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        out.append(sample)
    return out


def expected_matrix(samples_):
    total = 0
    for s in samples_:
        total = total + confusion_matrix(s.pred_sem_seg.data.numpy()[0],
                                         s.gt_sem_seg.data.numpy()[0],
                                         len(CLASSES))
    return total


def run(samples_, **kwargs):
    metric = METRICS.build(dict(type='PseudoLabelMetric', **kwargs))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [s.to_dict() for s in samples_[:2]])
    metric.process({}, [s.to_dict() for s in samples_[2:]])
    return metric.evaluate(len(samples_))


def test_the_saved_matrix_is_the_scored_one(tmp_path):
    data = samples(str(tmp_path))
    out = str(tmp_path / 'out')
    metrics = run(data, output_dir=out, protocols=('full', 'confident'))
    path = osp.join(out, 'confusion_matrix.json')
    matrix, classes = load_confusion_matrix(path)
    expected = expected_matrix(data)
    assert expected.shape == (4, 5) and expected.sum() == 3 * (H * W - 3)
    np.testing.assert_array_equal(matrix, expected)
    assert classes == list(CLASSES)
    # The matrix gives the reported scores.
    scores = summarize_confusion(matrix)
    assert metrics['mIoU_full'] == round(100 * scores['mIoU_full'], 2)
    # Written atomically: no temporary file is left beside it.
    assert os.listdir(out) == ['confusion_matrix.json']


def test_no_file_without_output_dir_or_scores(tmp_path):
    data = samples(str(tmp_path))
    run(data)  # no output_dir: nothing written anywhere
    assert sorted(os.listdir(tmp_path)) == ['img0.png', 'img1.png', 'img2.png']
    for s in data:
        del s.gt_sem_seg
    out = str(tmp_path / 'out')
    run(data, output_dir=out)  # nothing scored: no matrix
    assert not osp.exists(osp.join(out, 'confusion_matrix.json'))


def test_class_ids_name_the_rows_without_dataset_classes(tmp_path):
    data = samples(str(tmp_path))
    out = str(tmp_path / 'out')
    metric = METRICS.build(dict(type='PseudoLabelMetric', output_dir=out))
    for s in data:
        s.pred_cams = PixelData(data=torch.zeros(3, H, W))  # 3 classes + bg
    metric.process({}, [s.to_dict() for s in data])
    metric.evaluate(len(data))
    matrix, classes = load_confusion_matrix(
        osp.join(out, 'confusion_matrix.json'))
    assert classes == ['0', '1', '2', '3']
    np.testing.assert_array_equal(matrix, expected_matrix(data))
