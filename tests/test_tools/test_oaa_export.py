"""The OAA export through ``tools/test.py``: the store comes from the hook.

One epoch of the SynthVOC OAA+ config on 8 tiny images, then
``tools/test.py CONFIG CKPT --out DIR`` with no store option takes the maps
the training accumulated beside the checkpoint; a checkpoint with no store
beside it is an error naming the option to pass (never the network's own
CAMs), and the option still works.
"""
import os.path as osp
import shutil
import sys

import pytest

from ..conftest import SERIAL_LOADERS, run_tool, small_synthvoc

CONFIG = 'configs/synthvoc/oaa_r18-w16_8e_synthvoc-112x112.py'
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('oaa_export')
    root = small_synthvoc(tmp / 'synthvoc', num_train=8, num_train_subset=4)
    options = [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + SERIAL_LOADERS + [
        'model.backbone.init_cfg=None', 'model.data_preprocessor.size=(64,64)'
    ]
    work_dir = tmp / 'train'
    run_tool(
        [
            sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir,
            '--cfg-options', 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=9', 'train_dataloader.batch_size=4',
            'train_dataloader.dataset.pipeline.1.scale=(64,64)',
            'custom_hooks.0.start_epoch=0'
        ] + options,
        env=ENV)
    assert len(list((work_dir / 'oaa_store').glob('*.npz'))) == 8
    return tmp, work_dir, options


def test_export_takes_the_store_beside_the_checkpoint(trained):
    tmp, work_dir, options = trained
    log = run_tool(
        [
            sys.executable, 'tools/test.py', CONFIG, work_dir / 'epoch_1.pth',
            '--work-dir', tmp / 'test', '--out', tmp / 'out', '--cfg-options'
        ] + options,
        env=ENV)
    assert 'CAMs from the accumulated maps in ' + str(
        work_dir / 'oaa_store') in log
    assert len(list((tmp / 'out' / 'pseudo_labels').glob('*.png'))) == 8


def test_no_store_is_an_error_and_the_option_still_works(trained):
    tmp, work_dir, options = trained
    published = tmp / 'published'
    published.mkdir()
    shutil.copy(work_dir / 'epoch_1.pth', published / 'oaa.pth')
    code, log = run_tool(
        [
            sys.executable, 'tools/test.py', CONFIG, published / 'oaa.pth',
            '--work-dir', tmp / 'test2', '--out', tmp / 'out2', '--cfg-options'
        ] + options,
        env=ENV,
        check=False)
    assert code != 0
    assert f'no store at {published / "oaa_store"}' in log, log[-3000:]
    assert '--cfg-options model.test_cfg.oaa_store=' in log
    assert not osp.exists(tmp / 'out2' / 'pseudo_labels') or not list(
        (tmp / 'out2' / 'pseudo_labels').glob('*.png'))
    log = run_tool(
        [
            sys.executable, 'tools/test.py', CONFIG, published / 'oaa.pth',
            '--work-dir', tmp / 'test3', '--out', tmp / 'out3',
            '--cfg-options',
            f'model.test_cfg.oaa_store={work_dir / "oaa_store"}'
        ] + options,
        env=ENV)
    assert 'CAMs from the accumulated maps' not in log
    assert len(list((tmp / 'out3' / 'pseudo_labels').glob('*.png'))) == 8
