"""PseudoLabelMetric scores the classifier's pred_sem_seg: the three mIoU
protocols, score_list, failures, a fixed-size state per rank, padding."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample

import rca_mm.evaluation.metrics.gather as gather
import rca_mm.evaluation.metrics.pseudo_label_metric as plm
from rca_mm.evaluation.functional import confusion_matrix, summarize_confusion
from rca_mm.registry import METRICS

CLASSES = ('background', 'a', 'b', 'c')
H, W = 6, 8


def make_sample(root, name, labels, gt=None, error=None):
    """A predict-output sample: ``pred_sem_seg`` (or the reason it has
    none) and the ground truth."""
    sample = SegDataSample(
        metainfo=dict(img_path=f'{root}/JPEGImages/{name}.jpg', img_name=name))
    if error is not None:
        sample.set_metainfo(dict(pseudo_label_error=error))
    else:
        sample.pred_sem_seg = PixelData(
            data=torch.from_numpy(np.asarray(labels, np.uint8))[None])
    if gt is not None:
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(np.asarray(gt, np.int64))[None])
    return sample


def random_samples(root, count, seed=0, size=(H, W)):
    """``count`` images with random labels (no 255) and GT (some 255)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        gt = rng.integers(0, 4, size)
        gt[0, :2] = 255
        labels = rng.integers(0, 4, size)
        samples.append(make_sample(root, f'r{i}', labels, gt))
    return samples


def run_metric(samples, size=None, **kwargs):
    metric = METRICS.build(dict(type='PseudoLabelMetric', **kwargs))
    metric.dataset_meta = dict(classes=CLASSES)
    # Batches of one and of the rest.
    metric.process({}, [s.to_dict() for s in samples[:1]])
    metric.process({}, [s.to_dict() for s in samples[1:]])
    return metric.evaluate(size or len(samples))


def expected_metrics(samples):
    cm = sum(
        confusion_matrix(s.pred_sem_seg.data.numpy()[0],
                         s.gt_sem_seg.data.numpy()[0], len(CLASSES))
        for s in samples)
    scores = summarize_confusion(cm)
    return dict(
        mIoU_full=round(100 * scores['mIoU_full'], 2),
        mIoU_confident=round(100 * scores['mIoU_confident'], 2),
        coverage=round(100 * scores['coverage_all'], 2),
        num_failed=0)


def test_scores_the_listed_images(tmp_path):
    root = str(tmp_path)
    samples = random_samples(root, 3)
    (tmp_path / 'ImageSets/Segmentation').mkdir(parents=True)
    (tmp_path / 'ImageSets/Segmentation/train.txt').write_text('r0\nr1\n')
    metrics = run_metric(
        samples, score_list='ImageSets/Segmentation/train.txt')
    assert metrics == expected_metrics(samples[:2])
    assert metrics != expected_metrics(samples)
    # Labels without 255 pixels: both protocols agree, full coverage.
    assert metrics['mIoU_full'] == metrics['mIoU_confident']
    assert metrics['coverage'] == 100.


def test_full_protocol_equals_mmseg_iou_metric(tmp_path):
    """Where both apply (labels without 255), mIoU_full is IoUMetric's."""
    samples = random_samples(str(tmp_path), 5, seed=3)
    ours = run_metric(samples)
    theirs = IoUMetric(iou_metrics=['mIoU'])
    theirs.dataset_meta = dict(classes=CLASSES)
    theirs.process({}, [s.to_dict() for s in samples])
    assert ours['mIoU_full'] == theirs.evaluate(len(samples))['mIoU']


# The saliency-recipe example of test_pseudo_label_recipes.py (classes 2
# and 5 of 5): its pseudo label and a hand-made ground truth.
LABEL_S = np.array([[0, 0, 255, 255], [255, 0, 2, 5], [0, 0, 2, 2]])
GT_S = np.array([[0, 0, 0, 2], [0, 0, 2, 5], [0, 0, 2, 2]])
CLASSES_S = tuple('bg c1 c2 c3 c4 c5'.split())


def test_three_protocols_by_hand(tmp_path, log_messages):
    """IRN's eval_sem_seg.py counts a predicted 255 as background."""
    good = make_sample(str(tmp_path), 'good', LABEL_S, GT_S)
    failed = make_sample(
        str(tmp_path),
        'no_sal',
        None,
        GT_S,
        error="ValueError: SaliencyRecipe needs `gt_saliency`")
    metric = METRICS.build(
        dict(type='PseudoLabelMetric', protocols=('full', 'confident', 'irn')))
    metric.dataset_meta = dict(classes=CLASSES_S)
    metric.process({}, [good.to_dict(), failed.to_dict()])
    metrics = metric.compute_metrics(metric.results)
    # Full IoU 5/7, 3/4, 1 (bg, 2, 5); confident 1, 1, 1; IRN (255 -> 0):
    # background TP 7 of GT 7, predicted 8; class 2 TP 3 of GT 4,
    # predicted 3; class 5 exact. 9 of 12 GT pixels got a class. The
    # failed image is not scored.
    assert metrics == dict(
        num_failed=1,
        mIoU_full=round(100 * (5 / 7 + 3 / 4 + 1) / 3, 2),
        mIoU_confident=100.,
        mIoU_irn=round(100 * (7 / 8 + 3 / 4 + 1) / 3, 2),
        coverage=75.)
    log = log_messages()
    assert 'IoU_irn' in log
    assert '2 images, 1 labelled, 1 failed' in log
    assert "no_sal: ValueError: SaliencyRecipe needs `gt_saliency`" in log
    default = METRICS.build(dict(type='PseudoLabelMetric'))
    default.dataset_meta = dict(classes=CLASSES_S)
    default.process({}, [good.to_dict()])
    assert 'mIoU_irn' not in default.compute_metrics(default.results)


def test_classes_from_the_cams_without_dataset_classes(tmp_path):
    sample = make_sample(str(tmp_path), 'x', LABEL_S, GT_S)
    sample.pred_cams = PixelData(data=torch.zeros(5, 3, 4))
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.process({}, [sample.to_dict()])
    assert metric.results[0]['pending']['cm'].shape == (6, 7)


def test_evaluate_drops_padding_and_no_gt(tmp_path, log_messages):
    """mmengine's collect_results keeps the first `size` results (the
    sampler's padding is dropped); images without GT are not scored."""
    samples = [make_sample(str(tmp_path), f'p{i}', LABEL_S) for i in range(2)]
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.dataset_meta = dict(classes=CLASSES_S)
    metric.process({}, [s.to_dict() for s in samples])
    assert metric.evaluate(1) == dict(num_failed=0)
    assert 'no image was scored' in log_messages()
    assert 'PseudoLabelMetric: 1 images' in log_messages()


def test_running_sum_scores_as_the_per_image_matrices_in_fixed_memory(
        tmp_path, log_messages):
    samples = random_samples(str(tmp_path), 24)
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.dataset_meta = dict(classes=CLASSES)
    sizes = []
    for start in range(0, 24, 3):
        metric.process({}, [s.to_dict() for s in samples[start:start + 3]])
        sizes.append(len(pickle.dumps(metric.results)))
    # What ranks send to rank 0 is one summary of a fixed size, whatever
    # the number of images (it was one confusion matrix per image, 128
    # bytes of int64 each here); a count may take a byte more.
    assert len(metric.results) == 1
    assert max(sizes) - min(sizes) <= 2
    assert metric.evaluate(24) == expected_metrics(samples)
    assert 'PseudoLabelMetric: 24 images scored' in log_messages()
    assert metric.results == []


def test_padding_of_the_last_rank_is_left_out(tmp_path, monkeypatch,
                                              log_messages):
    """Rank 1 of 2 on 5 images gets images 1, 3 and a repeat of image 0
    (sampler padding at position 5): the repeat is not scored."""
    samples = random_samples(str(tmp_path), 3)
    monkeypatch.setattr(plm, 'get_world_size', lambda: 2)
    monkeypatch.setattr(plm, 'get_rank', lambda: 1)
    monkeypatch.setattr(
        gather,
        'collect_results',
        lambda results, size, device, tmpdir=None: results)
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [s.to_dict() for s in samples])
    assert metric.evaluate(5) == expected_metrics(samples[:2])
    assert 'PseudoLabelMetric: 2 images' in log_messages()
    metric.process({}, [s.to_dict() for s in samples])  # 6 images: no pad
    assert metric.evaluate(6) == expected_metrics(samples)


@pytest.mark.parametrize('cfg, match', [
    (dict(recipe=dict(type='SaliencyRecipe')), 'model.test_cfg.pseudo_label'),
    (dict(recipe='saliency', crf=True), r"\['crf', 'recipe'\].*"
     'model.test_cfg.pseudo_label'),
    (dict(bg_threshold=0.3), 'model.test_cfg.pseudo_label'),
    (dict(crf_workers=4), 'model.test_cfg.crf_workers'),
    (dict(save_cams=True), '--save-cams'),
    (dict(show_dir='x'), '--show-dir'),
])
def test_settings_that_moved_name_their_new_key(cfg, match):
    with pytest.raises(ValueError, match=match):
        METRICS.build(dict(type='PseudoLabelMetric', **cfg))


def test_bad_config_and_samples(tmp_path):
    with pytest.raises(TypeError, match='no_such_key'):
        METRICS.build(dict(type='PseudoLabelMetric', no_such_key=1))
    with pytest.raises(ValueError, match='`protocols`'):
        METRICS.build(dict(type='PseudoLabelMetric', protocols=('eps', )))
    sample = make_sample(str(tmp_path), 'x', LABEL_S, GT_S)
    unlabelled = sample.to_dict()
    unlabelled.pop('pred_sem_seg')
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    with pytest.raises(KeyError, match='model.test_cfg.pseudo_label'):
        metric.process({}, [unlabelled])
    with pytest.raises(ValueError, match='number of classes is unknown'):
        metric.process({}, [sample.to_dict()])
    sample.pred_cams = PixelData(data=torch.zeros(3, 3, 4))
    metric.dataset_meta = dict(classes=CLASSES + ('d', ))
    with pytest.raises(ValueError, match='5 classes'):
        metric.process({}, [sample.to_dict()])
    del sample.pred_cams
    metric = METRICS.build(
        dict(type='PseudoLabelMetric', score_list='nowhere/train.txt'))
    metric.dataset_meta = dict(classes=CLASSES_S)
    with pytest.raises(FileNotFoundError, match='nowhere/train.txt'):
        metric.process({}, [sample.to_dict()])
