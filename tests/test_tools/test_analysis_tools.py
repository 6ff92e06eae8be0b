"""The everyday analysis tools on tiny inputs: analyze_logs, browse_dataset,
get_flops, confusion_matrix (tools/analysis_tools/) and print_config
(tools/misc/)."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch.nn as nn
from mmengine.config import Config
from PIL import Image

from rca_mm.fileio.confusion_json import save_confusion_matrix
from rca_mm.registry import MODELS
from rca_mm.testing.tiny_runner import write_tiny_synthvoc
from rca_mm.visualization.log_curves import (find_scalar_log, load_scalar_log,
                                             parse_scalar_lines,
                                             plot_scalar_curves)
from tests.conftest import REPO

STAGE1 = osp.join(REPO, 'configs', 'synthvoc',
                  'rca-eps_r18-w16_8e_synthvoc-112x112.py')
STAGE2 = osp.join(REPO, 'configs', 'synthvoc',
                  'deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py')


def load_tool(path):
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(path)[:-3], osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path):
    with Image.open(path) as image:
        assert image.format == 'PNG'
        return image.size


# ---------------------------------------------------------- analyze_logs
# A stage-1 log as mmengine writes it: training lines every iteration with
# the epoch, validation after each epoch with step = the epoch, and a line
# cut off by a kill.
STAGE1_LOG = [
    dict(lr=0.01, loss=1.5, loss_rsc=0.0, time=0.5, epoch=1, iter=1, step=1),
    dict(lr=0.01, loss=1.25, loss_rsc=0.0, time=0.4, epoch=1, iter=2, step=2),
    {
        'multi-label/mAP': 40.0,
        'time': 0.1,
        'step': 1
    },
    dict(lr=0.001, loss=1.0, loss_rsc=2.25, time=0.4, epoch=2, iter=3, step=3),
    dict(lr=0.001, loss=0.75, loss_rsc=2.0, time=0.4, epoch=2, iter=4, step=4),
    {
        'multi-label/mAP': 55.5,
        'time': 0.1,
        'step': 2
    },
]
# Stage 2: iteration-based, validation at the iteration.
STAGE2_LOG = [
    dict(lr=0.01, loss=2.0, iter=50, step=50),
    dict(lr=0.01, loss=1.0, iter=100, step=100),
    dict(mIoU=30.5, aAcc=80.0, step=100),
]


def write_log(path, records, tail=''):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in records) + tail)
    return str(path)


def test_parse_units_and_keys(tmp_path):
    log = parse_scalar_lines([json.dumps(r)
                              for r in STAGE1_LOG] + ['{"loss": 0.5, "it'])
    loss = log.series['loss']
    assert (loss.steps, loss.values, loss.unit,
            loss.train) == ([1, 2, 3, 4], [1.5, 1.25, 1.0, 0.75], 'iter', True)
    assert log.series['loss_rsc'].values == [0.0, 0.0, 2.25, 2.0]
    mAP = log.series['multi-label/mAP']
    assert (mAP.steps, mAP.values, mAP.unit,
            mAP.train) == ([1, 2], [40.0, 55.5], 'epoch', False)
    # A name on both kinds of line: the validation copy is '<key>/val'.
    assert log.series['time'].values == [0.5, 0.4, 0.4, 0.4]
    assert log.series['time/val'].values == [0.1, 0.1]
    assert not {'step', 'iter', 'epoch'} & set(log.series)

    stage2 = parse_scalar_lines([json.dumps(r) for r in STAGE2_LOG])
    assert stage2.series['mIoU'] == ([100], [30.5], 'iter', False)
    with pytest.raises(ValueError, match=r'<log>:1: not JSON'):
        parse_scalar_lines(['{"loss": ', json.dumps(STAGE2_LOG[0])])
    summary = parse_scalar_lines(['{"mIoU_full": 66.7, "coverage": 90}'])
    assert summary.series == {} and summary.summaries == [{
        'mIoU_full': 66.7,
        'coverage': 90
    }]


def test_find_the_log_of_a_work_dir(tmp_path):
    old = write_log(
        tmp_path / 'w' / '20260101_000000' / 'vis_data' / 'scalars.json',
        STAGE2_LOG)
    new = write_log(
        tmp_path / 'w' / '20260102_000000' / 'vis_data' / 'scalars.json',
        STAGE1_LOG)
    os.utime(old, (1, 1))
    assert find_scalar_log(str(tmp_path / 'w')) == new
    assert find_scalar_log(str(tmp_path / 'w' / '20260101_000000')) == old
    assert find_scalar_log(old) == old
    # A test run writes <timestamp>/<timestamp>.json, its summary.
    test_log = write_log(
        tmp_path / 't' / '20260103_000000' / '20260103_000000.json',
        [dict(mIoU_full=66.7, num_failed=None)])
    os.makedirs(tmp_path / 't' / '20260103_000000' / 'vis_data')
    assert find_scalar_log(str(tmp_path / 't')) == test_log
    log = load_scalar_log(str(tmp_path / 't'))
    assert log.summaries == [dict(mIoU_full=66.7, num_failed=None)]
    with pytest.raises(KeyError, match="'mIoU_full' is in a test run"):
        plot_scalar_curves([log], ['mIoU_full'])
    with pytest.raises(FileNotFoundError, match='no JSON log'):
        find_scalar_log(str(tmp_path))


def test_plotted_lines_are_the_logged_values(tmp_path):
    log = load_scalar_log(
        write_log(tmp_path / 'scalars.json', STAGE1_LOG, '{"lo'))
    fig = plot_scalar_curves([log], ['loss', 'loss_rsc', 'multi-label/mAP'],
                             title='T')
    iters, epochs = fig.axes[0], fig.axes[1]
    assert iters.get_xlabel() == 'iter' and epochs.get_xlabel() == 'epoch'
    lines = {ln.get_label(): ln for ln in iters.get_lines()}
    assert sorted(lines) == ['loss', 'loss_rsc']
    np.testing.assert_array_equal(lines['loss'].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(lines['loss'].get_ydata(),
                                  [1.5, 1.25, 1.0, 0.75])
    np.testing.assert_array_equal(lines['loss_rsc'].get_ydata(),
                                  [0.0, 0.0, 2.25, 2.0])
    (mAP, ) = epochs.get_lines()
    assert mAP.get_label() == 'multi-label/mAP' and mAP.get_marker() == 'o'
    np.testing.assert_array_equal(mAP.get_xdata(), [1, 2])
    np.testing.assert_array_equal(mAP.get_ydata(), [40.0, 55.5])
    assert fig._suptitle.get_text() == 'T'

    # Two logs: mmseg's '<log>_<key>' legend, or the given one.
    other = load_scalar_log(write_log(tmp_path / 's2.json', STAGE2_LOG))
    fig = plot_scalar_curves([log, other], ['loss'], names=['a', 'b'])
    assert [ln.get_label()
            for ln in fig.axes[0].get_lines()] == ['a_loss', 'b_loss']
    fig = plot_scalar_curves([log, other], ['loss'], legend=['x', 'y'])
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ['x', 'y']
    with pytest.raises(ValueError, match='2 labels for 2 logs x 2 keys'):
        plot_scalar_curves([log, other], ['loss', 'lr'], legend=['x', 'y'])
    with pytest.raises(KeyError, match="'mIoU_ful' is in none.*'mIoU'"):
        plot_scalar_curves([log, other], ['mIoU_ful'])


def test_analyze_logs_tool(tmp_path, capsys):
    tool = load_tool('tools/analysis_tools/analyze_logs.py')
    write_log(tmp_path / 'w' / '20260102_000000' / 'vis_data' / 'scalars.json',
              STAGE1_LOG)
    out = str(tmp_path / 'curves.png')
    tool.main([
        str(tmp_path / 'w'), '--keys', 'loss_rsc', 'multi-label/mAP', '--out',
        out
    ])
    width, height = png_size(out)
    assert (width, height) == (800, 700)  # two axes: per iter, per epoch
    printed = capsys.readouterr().out
    assert 'loss_rsc, 4 values, last 2 at iter 4' in printed
    assert 'multi-label/mAP, 2 values, last 55.5 at epoch 2' in printed
    tool.main([str(tmp_path / 'w'), '--list'])
    printed = capsys.readouterr().out
    assert 'loss_rsc: 4 values (train, per iter)' in printed
    assert 'multi-label/mAP: 2 values (metric, per epoch)' in printed
    with pytest.raises(SystemExit, match='--out'):
        tool.main([str(tmp_path / 'w')])


# ------------------------------------------------------ confusion_matrix
def test_confusion_matrix_tool(tmp_path, capsys):
    tool = load_tool('tools/analysis_tools/confusion_matrix.py')
    matrix = np.array([[60, 10, 10, 20], [5, 15, 0, 0], [0, 0, 0, 0]])
    path = str(tmp_path / 'export' / 'confusion_matrix.json')
    save_confusion_matrix(path, matrix, ['background', 'cat', 'dog'])
    tool.main([str(tmp_path / 'export'), '--show'])
    png = str(tmp_path / 'export' / 'confusion_matrix.png')
    assert png_size(png)[0] > 200
    printed = capsys.readouterr().out
    assert '120 pixels, 3 classes' in printed
    rows = {
        ln.split()[0]: ln.split()[1:]
        for ln in printed.splitlines()
        if ln.startswith(('background ', 'cat ', 'dog '))
    }
    assert rows['background'] == ['60.0', '10.0', '10.0', '20.0']
    assert rows['cat'] == ['25.0', '75.0', '0.0', '0.0']
    assert rows['dog'] == ['nan'] * 4
    with pytest.raises(SystemExit, match='no such file'):
        tool.main([str(tmp_path)])


# -------------------------------------------------------------- get_flops
@MODELS.register_module(force=True)
class _FlopsBackbone(nn.Module):
    """One 3x3 conv, 3 -> 4 channels, stride 2, no bias."""

    def __init__(self, init_cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)

    def forward(self, x):
        return (self.conv(x), )


def test_get_flops_tool_known_count(tmp_path, capsys):
    tool = load_tool('tools/analysis_tools/get_flops.py')
    config = tmp_path / 'tiny.py'
    config.write_text("default_scope = 'rca_mm'\n"
                      "model = dict(type='CAMClassifier',\n"
                      "             backbone=dict(type='_FlopsBackbone'),\n"
                      "             head=dict(type='CAMHead', in_channels=4,\n"
                      "                       num_classes=2))\n")
    tool.main([str(config), '--shape', '20', '12'])
    printed = capsys.readouterr().out
    # 10 x 6 output pixels: 4 x 3 x 9 (conv) + 2 x 4 (classifier) each.
    assert 'input shape: (3, 20, 12)' in printed
    assert f'({10 * 6 * (4 * 3 * 9 + 2 * 4):,} multiply-adds)' in printed
    assert f'backbone: {10 * 6 * 4 * 3 * 9 / 1e3:.3f} K flops' in printed
    assert f'Params: {4 * 3 * 9 + 2 * 4}' in printed
    with pytest.raises(KeyError, match='has no key'):
        tool.main([str(config), '--cfg-options', 'model.hed.x=1'])


@pytest.mark.parametrize('config, head', [(STAGE1, 'head'),
                                          (STAGE2, 'decode_head')])
def test_get_flops_tool_on_the_synthvoc_configs(config, head, capsys):
    tool = load_tool('tools/analysis_tools/get_flops.py')
    tool.main([config, '--shape', '32'])
    printed = capsys.readouterr().out
    assert 'input shape: (3, 32, 32)' in printed
    assert '  backbone: ' in printed and f'  {head}: ' in printed


# --------------------------------------------------------- print_config
def test_print_config_tool(tmp_path, capsys):
    tool = load_tool('tools/misc/print_config.py')
    save = str(tmp_path / 'saved.py')
    tool.main([
        STAGE1, '--cfg-options', 'model.head.gate_threshold=0.5',
        '--save-path', save
    ])
    printed = capsys.readouterr().out
    assert printed.startswith('Config:\n')
    assert 'gate_threshold=0.5' in printed
    assert f'Config saved to {save}' in printed
    saved = Config.fromfile(save)
    assert saved.model.head.gate_threshold == 0.5
    assert saved.model.head.type == 'RCAHead'
    assert os.listdir(tmp_path) == ['saved.py']
    with pytest.raises(KeyError, match='has no key'):
        tool.main([STAGE1, '--cfg-options', 'model.head.gate_treshold=0.5'])
    with pytest.raises(SystemExit, match='must end with'):
        tool.main([STAGE1, '--save-path', str(tmp_path / 'x.txt')])


# -------------------------------------------------------- browse_dataset
@pytest.fixture(scope='module')
def synthvoc(tmp_path_factory):
    return write_tiny_synthvoc(
        str(tmp_path_factory.mktemp('synthvoc')), num_train=3, num_val=1)


def test_browse_dataset_tool_both_stages(synthvoc, tmp_path):
    tool = load_tool('tools/analysis_tools/browse_dataset.py')
    out1, out2 = str(tmp_path / 'stage1'), str(tmp_path / 'stage2')
    tool.main([
        STAGE1, '--output-dir', out1, '--not-show', '--max-images', '2',
        '--seed', '0', '--cfg-options',
        f'train_dataloader.dataset.data_root={synthvoc}'
    ])
    names = sorted(os.listdir(out1))
    assert names == ['2026_000000.png', '2026_000001.png']
    # image | tags | saliency | saliency on image, 112x112 crops, titles.
    assert png_size(osp.join(out1, names[0])) == (4 * 112, 14 + 112)
    tool.main([
        STAGE2, '--output-dir', out2, '--not-show', '--max-images', '1',
        '--cfg-options', f'train_dataloader.dataset.data_root={synthvoc}',
        'train_dataloader.dataset.data_prefix.seg_map_path='
        'SegmentationClassAug'
    ])
    # image | classes | label
    size = png_size(osp.join(out2, '2026_000000.png'))
    assert size == (3 * 112, 14 + 112)
    with pytest.raises(SystemExit, match='--output-dir'):
        tool.main([STAGE1, '--not-show'])


def test_browse_dataset_tool_with_another_visualizer(synthvoc, tmp_path):
    # mmpretrain's visualizer (the SynthNet config's) cannot draw the
    # panels: the tool draws with a default WSSSLocalVisualizer.
    tool = load_tool('tools/analysis_tools/browse_dataset.py')
    config = tmp_path / 'other_vis.py'
    config.write_text(
        f"_base_ = ['{STAGE1}']\n"
        "visualizer = dict(type='mmpretrain.UniversalVisualizer',\n"
        "                  _delete_=True)\n")
    out = str(tmp_path / 'out')
    tool.main([
        str(config), '--output-dir', out, '--not-show', '--max-images', '1',
        '--cfg-options', f'train_dataloader.dataset.data_root={synthvoc}'
    ])
    assert png_size(osp.join(out, '2026_000000.png')) == (4 * 112, 14 + 112)
