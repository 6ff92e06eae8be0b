import logging
import os
import os.path as osp
import pickle
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

import rca_mm.evaluation.metrics.pseudo_label_metric as plm
from rca_mm.evaluation.functional import (confusion_matrix, crf_refine_cams,
                                          saliency_recipe, summarize_confusion,
                                          threshold_recipe)
from rca_mm.fileio import read_label_png, save_label_png
from rca_mm.registry import METRICS, PSEUDO_LABEL_RECIPES

CLASSES = ('background', 'a', 'b', 'c')
H, W = 6, 8


@pytest.fixture
def log_messages():
    """Messages logged through mmengine's current logger in the test."""
    logger = MMLogger.get_instance(f'test_plm_{uuid.uuid4().hex}')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    yield lambda: '\n'.join(r.getMessage() for r in records)
    logger.removeHandler(handler)


def make_sample(root, name, cams, tags, gt=None, saliency=None, pred_bg=None):
    """A predict-output sample in the shared-interface format; writes the
    image file at ``img_path``."""
    h, w = cams.shape[1:]
    img_path = osp.join(root, 'JPEGImages', name + '.png')
    os.makedirs(osp.dirname(img_path), exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, name)))
    Image.fromarray(rng.integers(0, 255, (h, w, 3),
                                 dtype=np.uint8)).save(img_path)
    sample = SegDataSample(
        metainfo=dict(img_path=img_path, img_name=name, ori_shape=(h, w)))
    sample.pred_cams = PixelData(
        data=torch.from_numpy(cams.astype(np.float32)))
    if tags is not None:
        sample.set_field(
            torch.tensor(tags, dtype=torch.float32), 'gt_img_labels')
    if gt is not None:
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(np.asarray(gt, np.int64))[None])
    if saliency is not None:
        sample.gt_saliency = PixelData(
            data=torch.from_numpy(np.asarray(saliency, np.float32))[None])
    if pred_bg is not None:
        sample.pred_bg = PixelData(
            data=torch.from_numpy(np.asarray(pred_bg, np.float32))[None])
    return sample


@pytest.fixture
def dataset(tmp_path):
    """Three images with 3 classes; the first two are listed in train.txt."""
    root = str(tmp_path / 'VOC')
    rng = np.random.default_rng(0)
    tags = [(1, 0, 0), (0, 1, 1), (0, 0, 1)]
    samples = []
    for i, tag in enumerate(tags):
        cams = rng.random((3, H, W)).astype(np.float32)
        cams[np.asarray(tag) == 0] = 0
        if i == 0:
            cams[2] = 1.  # an untagged class's CAM must be ignored
        gt = rng.integers(0, 4, (H, W))
        gt[0, 0] = 255
        samples.append(make_sample(root, f'img{i}', cams, tag, gt=gt))
    os.makedirs(osp.join(root, 'ImageSets', 'Segmentation'))
    with open(osp.join(root, 'ImageSets/Segmentation/train.txt'), 'w') as f:
        f.write('img0\nimg1\n')
    return root, samples


def run_metric(samples, size=None, **kwargs):
    metric = METRICS.build(dict(type='PseudoLabelMetric', **kwargs))
    metric.dataset_meta = dict(classes=CLASSES)
    # Batches of one and of the rest.
    metric.process({}, [s.to_dict() for s in samples[:1]])
    metric.process({}, [s.to_dict() for s in samples[1:]])
    return metric.evaluate(size or len(samples))


def expected_labels(sample, bg_threshold=0.2):
    tags = sample.gt_img_labels.numpy()
    idx = np.flatnonzero(tags > 0.5)
    return threshold_recipe(
        sample.pred_cams.data.numpy()[idx], idx + 1, bg_threshold=bg_threshold)


def expected_metrics(labels, samples):
    cm = sum(
        confusion_matrix(lab,
                         s.gt_sem_seg.data.numpy()[0], len(CLASSES))
        for lab, s in zip(labels, samples))
    scores = summarize_confusion(cm)
    return dict(
        mIoU_full=round(100 * scores['mIoU_full'], 2),
        mIoU_confident=round(100 * scores['mIoU_confident'], 2),
        coverage=round(100 * scores['coverage_all'], 2),
        num_failed=0)


def test_threshold_recipe_writes_and_scores_listed(dataset):
    root, samples = dataset
    out, show = osp.join(root, 'out'), osp.join(root, 'show')
    metrics = run_metric(
        samples,
        output_dir=out,
        keep_results=True,
        save_cams=True,
        show_dir=show,
        score_list='ImageSets/Segmentation/train.txt')
    labels = [expected_labels(s) for s in samples]
    for sample, label in zip(samples, labels):
        name = sample.img_name
        png = osp.join(out, 'pseudo_labels', name + '.png')
        assert Image.open(png).mode == 'P'
        np.testing.assert_array_equal(read_label_png(png), label)
        with np.load(osp.join(out, 'cams', name + '.npz')) as archive:
            idx = np.flatnonzero(sample.gt_img_labels.numpy())
            np.testing.assert_array_equal(archive['class_ids'], idx + 1)
            assert archive['cams'].dtype == np.float16
            np.testing.assert_allclose(
                archive['cams'], sample.pred_cams.data.numpy()[idx], atol=1e-3)
        overlay = np.array(Image.open(osp.join(show, name + '.jpg')))
        assert overlay.shape == (H, 2 * W, 3)
    assert 3 not in labels[0]  # the untagged class never appears
    # Only the listed img0, img1 are scored; all three are labelled.
    assert metrics == expected_metrics(labels[:2], samples[:2])
    assert metrics != expected_metrics(labels, samples)
    # The threshold recipe leaves nothing at 255: both protocols agree.
    assert metrics['mIoU_full'] == metrics['mIoU_confident']
    assert metrics['coverage'] == 100.


def test_resume_skips_written_and_rereads_them(dataset, monkeypatch,
                                               log_messages):
    root, samples = dataset
    out = osp.join(root, 'out')
    first = run_metric(samples, output_dir=out, save_cams=True)

    def no_writes(*args, **kwargs):
        raise AssertionError('a complete image was written again')

    monkeypatch.setattr(plm, 'save_label_png', no_writes)
    monkeypatch.setattr(plm, 'save_cam_npz', no_writes)
    second = run_metric(samples, output_dir=out, save_cams=True)
    assert second == first
    assert '0 labelled, 3 skipped as already written' in log_messages()
    # The score comes from the file: edit one and the score follows.
    edited = osp.join(out, 'pseudo_labels', 'img1.png')
    save_label_png(np.zeros((H, W), np.uint8), edited)
    third = run_metric(samples, output_dir=out, save_cams=True)
    labels = [expected_labels(s) for s in samples]
    labels[1] = np.zeros((H, W), np.uint8)
    assert third == expected_metrics(labels, samples)
    # Without its CAM file an image is not complete: it is labelled again.
    monkeypatch.undo()
    os.remove(osp.join(out, 'cams', 'img2.npz'))
    run_metric(samples, output_dir=out, save_cams=True)
    assert '1 labelled, 2 skipped as already written' in log_messages()


def test_crash_mid_write_leaves_no_partial_png(dataset, monkeypatch,
                                               log_messages):
    root, samples = dataset
    out = osp.join(root, 'out')
    real_save = Image.Image.save

    def save_then_crash(image, path, *args, **kwargs):  # the PNG encoder
        real_save(image, path, *args, **kwargs)
        assert osp.isfile(path)
        raise OSError('disk full')

    monkeypatch.setattr(Image.Image, 'save', save_then_crash)
    metrics = run_metric(samples, output_dir=out)
    assert metrics == dict(num_failed=3)
    assert os.listdir(osp.join(out, 'pseudo_labels')) == []
    log = log_messages()
    assert '3 images failed' in log
    for name in ('img0', 'img1', 'img2'):
        assert f'{name}: OSError: disk full' in log
    monkeypatch.undo()
    metrics = run_metric(samples, output_dir=out)
    assert metrics == expected_metrics([expected_labels(s) for s in samples],
                                       samples)
    assert sorted(os.listdir(osp.join(
        out, 'pseudo_labels'))) == ['img0.png', 'img1.png', 'img2.png']


# The saliency-recipe example of test_pseudo_label_recipes.py, with classes
# 2 and 5 of 5 and a hand-made ground truth.
SAL = np.array([[0, 31, 32, 255], [0, 0, 255, 255], [10, 10, 200, 255]],
               np.float32) / 255
CAMS_S = np.zeros((5, 3, 4), np.float32)
CAMS_S[1] = [[0, 0, 0, 0.95], [0.85, 0, 0.5, 0.3], [0, 0, 0.6, 0.2]]
CAMS_S[4] = [[0, 0, 0, 0.92], [0, 0, 0.4, 0.7], [0, 0.3, 0.1, 0]]
TAGS_S = (0, 1, 0, 0, 1)
GT_S = np.array([[0, 0, 0, 2], [0, 0, 2, 5], [0, 0, 2, 2]])


def test_saliency_recipe_both_protocols_and_missing_saliency(
        tmp_path, log_messages):
    root = str(tmp_path)
    good = make_sample(root, 'good', CAMS_S, TAGS_S, GT_S, saliency=SAL)
    no_sal = make_sample(root, 'no_sal', CAMS_S, TAGS_S, GT_S)
    metric = METRICS.build(
        dict(
            type='PseudoLabelMetric',
            recipe='saliency',
            output_dir=osp.join(root, 'out')))
    metric.process({}, [good.to_dict(), no_sal.to_dict()])
    metrics = metric.compute_metrics(metric.results)
    np.testing.assert_array_equal(
        read_label_png(osp.join(root, 'out/pseudo_labels/good.png')),
        [[0, 0, 255, 255], [255, 0, 2, 5], [0, 0, 2, 2]])
    # Hand-computed: full IoU 5/7, 3/4, 1 (bg, 2, 5); confident 1, 1, 1;
    # 9 of 12 GT pixels got a class. no_sal is not scored.
    assert metrics == dict(
        num_failed=1,
        mIoU_full=round(100 * (5 / 7 + 3 / 4 + 1) / 3, 2),
        mIoU_confident=100.,
        coverage=75.)
    assert "no_sal: ValueError: recipe='saliency' needs `gt_saliency`" \
        in log_messages()
    assert not osp.exists(osp.join(root, 'out/pseudo_labels/no_sal.png'))


def test_background_map_source(tmp_path):
    cams = np.zeros((7, 2, 3), np.float32)
    cams[2] = [[0.1, 0.5, 0.9], [0.3, 0.2, 0.0]]
    cams[6] = [[0.6, 0.4, 0.95], [0.1, 0.25, 0.2]]
    tags = np.zeros(7)
    tags[[2, 6]] = 1
    bg = [[0.7, 0.1, 0.1], [0.1, 0.3, 0.1]]
    out = str(tmp_path / 'out')
    sample = make_sample(str(tmp_path), 'x', cams, tags, pred_bg=bg)
    missing = make_sample(str(tmp_path), 'y', cams, tags)
    metric = METRICS.build(
        dict(type='PseudoLabelMetric', bg_source='map', output_dir=out))
    metric.process({}, [sample.to_dict(), missing.to_dict()])
    assert metric.compute_metrics(metric.results) == dict(num_failed=1)
    np.testing.assert_array_equal(
        read_label_png(osp.join(out, 'pseudo_labels', 'x.png')),
        [[0, 3, 7], [3, 0, 7]])
    # y is the latest image, kept apart until the next one or evaluate.
    assert metric.results[0]['pending']['name'] == 'y'
    assert 'pred_bg' in metric.results[0]['pending']['failed']


def test_tags_from_cams_without_gt_img_labels(tmp_path):
    cams = np.zeros((7, 2, 3), np.float32)
    cams[2] = [[0.1, 0.5, 0.9], [0.3, 0.2, 0.0]]
    cams[6] = [[0.6, 0.4, 0.95], [0.1, 0.25, 0.2]]
    sample = make_sample(str(tmp_path), 'x', cams, None)
    out = str(tmp_path / 'out')
    metric = METRICS.build(dict(type='PseudoLabelMetric', output_dir=out))
    metric.process({}, [sample.to_dict()])
    np.testing.assert_array_equal(
        read_label_png(osp.join(out, 'pseudo_labels', 'x.png')),
        [[7, 3, 7], [3, 7, 0]])


def test_crf_then_saliency_recipe(tmp_path):
    pytest.importorskip('pydensecrf')
    sample = make_sample(
        str(tmp_path), 'c', CAMS_S, TAGS_S, GT_S, saliency=SAL)
    out = str(tmp_path / 'out')
    metric = METRICS.build(
        dict(
            type='PseudoLabelMetric',
            recipe='saliency',
            crf=True,
            crf_cfg=dict(alpha=8),
            min_fg_ratio=0.,
            output_dir=out))
    metric.process({}, [sample.to_dict()])
    assert metric.compute_metrics(metric.results)['num_failed'] == 0
    image = np.array(Image.open(sample.img_path).convert('RGB'))
    refined = crf_refine_cams(image, CAMS_S[[1, 4]], alpha=8)
    expected = saliency_recipe(refined, [2, 5], SAL, min_fg_ratio=0.)
    np.testing.assert_array_equal(
        read_label_png(osp.join(out, 'pseudo_labels', 'c.png')), expected)


def test_evaluate_drops_padding_and_no_gt(tmp_path, log_messages):
    """mmengine's collect_results keeps the first `size` results (the
    sampler's padding is dropped); images without GT are not scored."""
    samples = [
        make_sample(str(tmp_path), f'p{i}', CAMS_S, TAGS_S, saliency=SAL)
        for i in range(2)
    ]
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.process({}, [s.to_dict() for s in samples])
    assert metric.evaluate(1) == dict(num_failed=0)
    assert 'no image was scored' in log_messages()
    assert 'PseudoLabelMetric: 1 images' in log_messages()


def test_bad_config_and_samples(tmp_path, dataset):
    for cfg, key in ((dict(recipe='crf'),
                      'recipe'), (dict(bg_source='saliency'), 'bg_source'),
                     (dict(recipe='saliency', bg_source='map'), 'map'),
                     (dict(conflict_threshold=2), 'conflict_threshold')):
        with pytest.raises(ValueError, match=key):
            METRICS.build(dict(type='PseudoLabelMetric', **cfg))
    _, samples = dataset
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    no_cams = samples[0].to_dict()
    no_cams.pop('pred_cams')
    with pytest.raises(KeyError, match='pred_cams'):
        metric.process({}, [no_cams])
    metric.dataset_meta = dict(classes=CLASSES + ('d', ))
    with pytest.raises(ValueError, match='5 classes'):
        metric.process({}, [samples[0].to_dict()])
    metric = METRICS.build(
        dict(type='PseudoLabelMetric', score_list='nowhere/train.txt'))
    with pytest.raises(FileNotFoundError, match='nowhere/train.txt'):
        metric.process({}, [samples[0].to_dict()])


@pytest.mark.parametrize('flat, recipe', [
    (dict(bg_threshold=0.3), dict(type='ThresholdRecipe', bg_threshold=0.3)),
    (dict(recipe='saliency',
          cam_floor=0.3), dict(type='SaliencyRecipe', cam_floor=0.3)),
])
def test_recipe_config_and_flat_form_agree(tmp_path, flat, recipe):
    """The flat form is translated: same recipe, same files, same scores."""
    samples = [
        make_sample(
            str(tmp_path), f'r{i}', CAMS_S, TAGS_S, GT_S, saliency=SAL)
        for i in range(2)
    ]
    samples[1].pred_cams.data[1] *= 0.5
    outputs = []
    for i, cfg in enumerate((flat, dict(recipe=recipe))):
        out = str(tmp_path / f'out{i}')
        metric = METRICS.build(
            dict(type='PseudoLabelMetric', output_dir=out, **cfg))
        assert repr(metric.recipe) == repr(PSEUDO_LABEL_RECIPES.build(recipe))
        metric.process({}, [s.to_dict() for s in samples])
        labels = [
            read_label_png(osp.join(out, 'pseudo_labels', f'r{i}.png'))
            for i in range(2)
        ]
        outputs.append((metric.compute_metrics(metric.results), labels))
    assert outputs[0][0] == outputs[1][0]
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])


def test_flat_keys_beside_a_recipe_config_are_refused(log_messages):
    with pytest.raises(ValueError, match='`recipe.bg_threshold`'):
        METRICS.build(
            dict(
                type='PseudoLabelMetric',
                recipe=dict(type='ThresholdRecipe'),
                bg_threshold=0.3))
    with pytest.raises(ValueError, match="recipe.type='BackgroundMapRecipe'"):
        METRICS.build(
            dict(
                type='PseudoLabelMetric',
                recipe=dict(type='ThresholdRecipe'),
                bg_source='map'))
    # A flat setting of another recipe is ignored, as before, and said so.
    metric = METRICS.build(
        dict(type='PseudoLabelMetric', recipe='saliency', bg_threshold=0.3))
    assert type(metric.recipe).__name__ == 'SaliencyRecipe'
    assert "['bg_threshold'] not used by SaliencyRecipe" in log_messages()
    with pytest.raises(KeyError, match='NoSuchRecipe'):
        METRICS.build(
            dict(type='PseudoLabelMetric', recipe=dict(type='NoSuchRecipe')))


def test_irn_protocol(tmp_path, log_messages):
    """IRN's eval_sem_seg.py counts a predicted 255 as background."""
    sample = make_sample(str(tmp_path), 'good', CAMS_S, TAGS_S, GT_S, SAL)
    metric = METRICS.build(
        dict(
            type='PseudoLabelMetric',
            recipe=dict(type='SaliencyRecipe'),
            protocols=('full', 'confident', 'irn')))
    metric.process({}, [sample.to_dict()])
    metrics = metric.compute_metrics(metric.results)
    # The label [[0, 0, 255, 255], [255, 0, 2, 5], [0, 0, 2, 2]] with 255
    # -> 0: background TP 7 of GT 7, predicted 8; class 2 TP 3 of GT 4,
    # predicted 3; class 5 exact.
    assert metrics == dict(
        num_failed=0,
        mIoU_full=round(100 * (5 / 7 + 3 / 4 + 1) / 3, 2),
        mIoU_confident=100.,
        mIoU_irn=round(100 * (7 / 8 + 3 / 4 + 1) / 3, 2),
        coverage=75.)
    assert 'IoU_irn' in log_messages()
    default = METRICS.build(dict(type='PseudoLabelMetric', recipe='saliency'))
    default.process({}, [sample.to_dict()])
    assert 'mIoU_irn' not in default.compute_metrics(default.results)
    with pytest.raises(ValueError, match='`protocols`'):
        METRICS.build(dict(type='PseudoLabelMetric', protocols=('eps', )))


def random_samples(root, count, seed=0, size=(H, W)):
    """``count`` scored images with random CAMs, tags and GT."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        tags = rng.integers(0, 2, 3)
        tags[i % 3] = 1
        cams = rng.random((3, ) + size).astype(np.float32)
        cams[tags == 0] = 0
        gt = rng.integers(0, 4, size)
        gt[0, :2] = 255
        samples.append(make_sample(root, f'r{i}', cams, tags, gt=gt))
    return samples


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
    expected = expected_metrics([expected_labels(s) for s in samples], samples)
    assert metric.evaluate(24) == expected
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
        plm,
        'collect_results',
        lambda results, size, device, tmpdir=None: results)
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [s.to_dict() for s in samples])
    expected = expected_metrics([expected_labels(s) for s in samples[:2]],
                                samples[:2])
    assert metric.evaluate(5) == expected
    assert 'PseudoLabelMetric: 2 images' in log_messages()
    metric.process({}, [s.to_dict() for s in samples])  # 6 images: no pad
    assert metric.evaluate(6) == expected_metrics(
        [expected_labels(s) for s in samples], samples)


def test_crf_recipes_of_a_batch_in_kept_workers_label_alike(
        tmp_path, monkeypatch):
    pytest.importorskip('pydensecrf')
    dense_crf_module = sys.modules['rca_mm.models.postprocess.dense_crf']
    started = []

    class Counted(dense_crf_module.ProcessPoolExecutor):

        def __init__(self, *args, **kwargs):
            started.append(kwargs.get('max_workers'))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(dense_crf_module, 'ProcessPoolExecutor', Counted)
    samples = random_samples(str(tmp_path), 8, size=(24, 32))
    outputs = []
    for workers in (0, 2):
        out = str(tmp_path / f'out{workers}')
        metric = METRICS.build(
            dict(
                type='PseudoLabelMetric',
                recipe=dict(
                    type='ThresholdRecipe', crf=True, crf_cfg=dict(alpha=4)),
                crf_workers=workers,
                output_dir=out))
        metric.dataset_meta = dict(classes=CLASSES)
        for start in range(0, 8, 4):
            metric.process({}, [s.to_dict() for s in samples[start:start + 4]])
        outputs.append((metric.evaluate(8), [
            read_label_png(osp.join(out, 'pseudo_labels', f'r{i}.png'))
            for i in range(8)
        ]))
        assert metric._pool.started == (workers == 2)
        metric._pool.close()
    assert started == [2]  # one pool for both batches
    assert outputs[0][0] == outputs[1][0]
    for serial, pooled in zip(outputs[0][1], outputs[1][1]):
        np.testing.assert_array_equal(serial, pooled)
    with pytest.raises(ValueError, match='crf_workers'):
        METRICS.build(dict(type='PseudoLabelMetric', crf_workers=-1))
