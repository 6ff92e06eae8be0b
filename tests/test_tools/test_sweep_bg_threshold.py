import importlib.util
import os.path as osp
import sys

import numpy as np
import pytest

from rca_mm.fileio import read_list_file, save_cam_npz, save_label_png
from tests.conftest import REPO, run_tool

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'sweep_bg_threshold.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('sweep_bg_threshold', TOOL)
    module = importlib.util.module_from_spec(spec)
    # Registered, so that pool workers can unpickle its functions.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cam_gt(tmp_path):
    """Two identical images: CAM of class 1 (exact in float16) and GT."""
    cam_dir, gt_dir = tmp_path / 'cams', tmp_path / 'gt'
    cam_dir.mkdir()
    gt_dir.mkdir()
    cams = np.array([[[0.25, 0.625], [0.125, 0.875]]], np.float32)
    gt = np.array([[1, 1], [0, 1]], np.uint8)
    for name in ('a', 'b'):
        save_cam_npz(str(cam_dir / f'{name}.npz'), np.array([1]), cams)
        save_label_png(gt, str(gt_dir / f'{name}.png'))
    (tmp_path / 'list.txt').write_text('a\n/JPEGImages/b.jpg x\n\n')
    return str(cam_dir), str(gt_dir), str(tmp_path / 'list.txt')


def test_sweep_hand_computed(cam_gt):
    """At 0.125 the label is the GT (ties go to background); at 0.375 pixel
    (0,0) is background: IoU bg 1/2, class 1 2/3; at 0.625 (0,1) too: IoU
    1/3 and 1/3. Class 2 is in neither map and is skipped."""
    tool = load_tool()
    cam_dir, gt_dir, list_file = cam_gt
    names = read_list_file(list_file)
    assert names == ['a', 'b']
    for nproc in (1, 2):
        rows = tool.sweep(
            cam_dir,
            gt_dir,
            names, [0.125, 0.375, 0.625],
            num_classes=3,
            nproc=nproc)
        np.testing.assert_allclose([r['mIoU_full'] for r in rows],
                                   [1, (1 / 2 + 2 / 3) / 2, 1 / 3])
        assert [r['mIoU_confident'] for r in rows] == \
            [r['mIoU_full'] for r in rows]
        # Predicted foreground: all 3 GT pixels, then 2 of them, then 1.
        np.testing.assert_allclose([r['fg_precision'] for r in rows], 1.0)
        np.testing.assert_allclose([r['fg_recall'] for r in rows],
                                   [1, 2 / 3, 1 / 3])


def test_sweep_command_line(cam_gt):
    cam_dir, gt_dir, list_file = cam_gt
    out = run_tool([
        'python', TOOL, cam_dir, gt_dir, list_file, '--thresholds',
        '0.125:0.625:0.25', '--num-classes', '3', '--nproc', '2'
    ])
    lines = out.strip().splitlines()
    assert lines[0] == '2 images'
    assert lines[1].split()[-2:] == ['fg_precision', 'fg_recall']
    assert lines[2].split() == [
        '0.125', '100.00', '100.00', '100.00', '100.00'
    ]
    assert lines[3].split() == ['0.375', '58.33', '58.33', '100.00', '66.67']
    assert lines[4].split() == ['0.625', '33.33', '33.33', '100.00', '33.33']
    assert lines[5] == ('best threshold: 0.125 (mIoU_full 100.00, '
                        'mIoU_confident 100.00)')


def test_parse_thresholds_and_errors(cam_gt, tmp_path, monkeypatch, capsys):
    tool = load_tool()
    assert tool.parse_thresholds('0.05:0.95:0.05') == pytest.approx(
        [round(0.05 * i, 2) for i in range(1, 20)])
    assert tool.parse_thresholds('0.3') == [0.3]
    for bad in ('a:b:c', '0.5:0.1:0.1', '0.1:0.5', '0:2:1'):
        with pytest.raises(ValueError, match='--thresholds'):
            tool.parse_thresholds(bad)
    cam_dir, gt_dir, _ = cam_gt
    with pytest.raises(FileNotFoundError, match='2 CAM/ground-truth'):
        tool.sweep(cam_dir, gt_dir, ['a', 'zz'], [0.2])
    # A bad argument ends with a one-line error, not a traceback.
    monkeypatch.setattr(sys, 'argv',
                        ['sweep', cam_dir, gt_dir,
                         str(tmp_path / 'none.txt')])
    with pytest.raises(SystemExit) as exit_info:
        tool.main()
    assert exit_info.value.code == 2
    assert "image list '" in capsys.readouterr().err


def test_sweep_agrees_with_metric(tmp_path):
    """The CAMs the writer saves, swept at the threshold of the labels the
    metric scores, give its mIoU."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from rca_mm.registry import METRICS, PSEUDO_LABEL_RECIPES
    recipe = PSEUDO_LABEL_RECIPES.build(
        dict(type='ThresholdRecipe', bg_threshold=0.25))
    rng = np.random.default_rng(1)
    samples, names = [], []
    gt_dir = tmp_path / 'gt'
    gt_dir.mkdir()
    for i in range(3):
        # Multiples of 1/64: exact in the float16 CAM files.
        cams = (rng.integers(0, 65, (4, 5, 6)) / 64).astype(np.float32)
        tags = rng.random(4) < 0.5
        tags[i] = True
        cams[~tags] = 0
        gt = rng.integers(0, 5, (5, 6))
        save_label_png(gt, str(gt_dir / f's{i}.png'))
        sample = SegDataSample(
            metainfo=dict(img_path=f's{i}.jpg', img_name=f's{i}'))
        sample.pred_cams = PixelData(data=torch.from_numpy(cams))
        sample.gt_img_labels = torch.from_numpy(tags.astype(np.float32))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        idx = np.flatnonzero(tags)
        sample.pred_sem_seg = PixelData(
            data=torch.from_numpy(recipe(cams[idx], idx + 1))[None])
        samples.append(sample.to_dict())
        names.append(f's{i}')
    out = tmp_path / 'out'
    writer = METRICS.build(
        dict(type='PseudoLabelWriter', save_cams=True, output_dir=str(out)))
    writer.process({}, samples)
    metric = METRICS.build(dict(type='PseudoLabelMetric'))
    metric.process({}, samples)
    metrics = metric.compute_metrics(metric.results)
    rows = load_tool().sweep(
        str(out / 'cams'), str(gt_dir), names, [0.25], num_classes=5)
    assert round(100 * rows[0]['mIoU_full'], 2) == metrics['mIoU_full']


def test_foreground_scores_count_background_hits():
    tool = load_tool()
    # rows: GT bg, GT class 1; columns: predicted bg, 1, 255
    cm = np.array([[6, 3, 0], [1, 2, 1]])
    scores = tool.foreground_scores(cm)
    assert scores['fg_precision'] == pytest.approx(2 / 5)
    assert scores['fg_recall'] == pytest.approx(2 / 4)


def test_the_recipe_is_the_configs(cam_gt, tmp_path):
    """--config: the config's ThresholdRecipe with bg_threshold varied, built
    from PSEUDO_LABEL_RECIPES; other recipes and the CRF are refused."""
    from rca_mm.evaluation.recipes import ThresholdRecipe
    tool = load_tool()
    recipes = tool.threshold_recipes([0.1, 0.3])
    assert [type(r) for r in recipes] == [ThresholdRecipe] * 2
    assert [r.bg_threshold for r in recipes] == [0.1, 0.3]
    config = tmp_path / 'cfg.py'
    config.write_text(
        "model = dict(test_cfg=dict(pseudo_label=dict(type='ThresholdRecipe', "
        'bg_threshold=0.2)))\n')
    recipe = tool.config_recipe(str(config))
    assert recipe == dict(type='ThresholdRecipe', bg_threshold=0.2)
    assert tool.threshold_recipes([0.4], recipe)[0].bg_threshold == 0.4
    with pytest.raises(ValueError, match="bg_threshold of 'ThresholdRe"):
        tool.threshold_recipes([0.4], dict(type='BackgroundMapRecipe'))
    with pytest.raises(ValueError, match='crf=True needs the images'):
        tool.threshold_recipes([0.4], dict(type='ThresholdRecipe', crf=True))
    config.write_text('model = dict(test_cfg=dict())\n')
    with pytest.raises(ValueError, match='no model.test_cfg.pseudo_label'):
        tool.config_recipe(str(config))
    cam_dir, gt_dir, list_file = cam_gt
    config.write_text(
        "model = dict(test_cfg=dict(pseudo_label=dict(type='ThresholdRecipe', "
        'bg_threshold=0.2)))\n')
    out = run_tool([
        'python', TOOL, cam_dir, gt_dir, list_file, '--thresholds', '0.375',
        '--num-classes', '3', '--config',
        str(config)
    ])
    assert out.strip().splitlines()[2].split() == [
        '0.375', '58.33', '58.33', '100.00', '66.67'
    ]
