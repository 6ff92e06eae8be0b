"""Bad input everywhere: every case in one place.

Each case must fail with a message that names the file or config key and
says what is wrong. Cases already covered next to their module run there
once; the table names that file:

==========================================  ===================================
input                                       where
==========================================  ===================================
misspelt ``--cfg-options`` key              here (config_checks.check_cfg_options)
``--cfg-options`` value of the wrong type   here (config_checks.check_cfg_options)
class file of 20 classes, num_classes 10    here (NumClassesCheckHook: train, test)
truncated last checkpoint for ``--resume``  tests/test_utils/test_safe_checkpoint, test_train_test
work dir or ``--out`` dir in use            tests/test_utils/test_workdir_lock, test_train_test,
                                            test_export_failures
pretrained weights path does not exist      here (safe_checkpoint loader)
checkpoint of another model in test.py      here (config_checks.check_checkpoint_fits)
checkpoint with a pickled callable          here + tests/test_utils, test_train_test
pseudo-label directory with missing files   tests/test_datasets/test_wsss_dataset_stage2
images that failed in a ``--out`` export    tests/test_tools/test_export_failures
saliency missing for the saliency recipe    tests/test_models/.../test_cam_classifier_pseudo_label
saliency file missing for LoadSaliencyMap   tests/test_datasets/test_transforms/test_loading
output directory without write permission   here (PseudoLabelWriter)
disk full while writing pseudo labels       here (PseudoLabelWriter)
NaN in the loss                             tests/test_engine/test_hooks/test_nan_guard_hook
==========================================  ===================================
"""
import errno
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from PIL import Image

from rca_mm.engine.config_checks import check_checkpoint_fits
from rca_mm.engine.runner_builder import load_config
from rca_mm.registry import MODELS
from rca_mm.utils import register_all_modules
from rca_mm.utils.safe_checkpoint import UnsafeCheckpointError
from ..conftest import run_tool, small_synthvoc
from ..test_evaluation.test_metrics.test_pseudo_label_writer import (run,
                                                                     samples)
from ..test_utils.test_safe_checkpoint import _CreatesFile

CONFIG = 'configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py'


def load(**options):
    return load_config(CONFIG, options, work_dir='/tmp/unused')


@pytest.mark.parametrize('key, message', [
    ('model.head.gate_treshold', "model.head \\(RCAHead\\) has no key "
     "'gate_treshold'; did you mean 'gate_threshold'"),
    ('train_dataloader.num_worker', "did you mean 'num_workers'"),
    ('train_cfg.max_epoch', "did you mean 'max_epochs'"),
    ('optim_wrapper.optimizer.lrr', "did you mean 'lr'"),
    ('randomnes.seed', "the config has no key 'randomnes'.*'randomness'"),
])
def test_misspelt_cfg_option_is_refused_with_a_suggestion(key, message):
    with pytest.raises(KeyError, match=message) as err:
        load(**{key: 1})
    assert CONFIG in str(err.value) and f'--cfg-options {key}' in str(
        err.value)


@pytest.mark.parametrize('key, value, message', [
    ('train_cfg.max_epochs', 'abc', "train_cfg.max_epochs='abc': the "
     "config's value is 8 \\(int\\), this is a str"),
    ('model.head.gate_threshold', 'abc', "gate_threshold='abc': the "
     "default of RCAHead\\(gate_threshold=...\\) is 0.7 \\(float\\)"),
    ('train_dataloader.persistent_workers', 'yes', "is True \\(bool\\)"),
    ('train_cfg.max_epochs', True, "is 8 \\(int\\), this is a bool"),
    ('train_dataloader.dataset', 'voc', "\\(ConfigDict\\), this is a str"),
])
def test_cfg_option_of_the_wrong_type_names_the_key(key, value, message):
    with pytest.raises(TypeError, match=message) as err:
        load(**{key: value})
    assert CONFIG in str(err.value)


def test_cfg_option_list_index_out_of_range():
    with pytest.raises(IndexError, match='pipeline is a list of 8'):
        load(**{'train_dataloader.dataset.pipeline.8.scale': (64, 64)})


def test_legitimate_cfg_options_are_applied():
    cfg = load(
        **{
            'model.head.gate_threshold':
            0.5,  # constructor default, not in cfg
            'train_dataloader.num_workers': 0,
            'randomness.seed': 3,  # a Runner argument
            'model.test_cfg.oaa_store': 'x',  # free-form dict
            'train_dataloader.dataset.pipeline.0.type':
            'LoadWSSSImageFromFile',
        })
    assert cfg.model.head.gate_threshold == 0.5
    assert cfg.randomness.seed == 3 and cfg.model.test_cfg.oaa_store == 'x'
    # Same kind, or None: accepted.
    cfg = load(
        **{
            'train_cfg.max_epochs': 2.0,
            'model.head.gate_threshold': 1,
            'val_dataloader': None,
            'train_dataloader.dataset.'
            'data_root': 5
        })
    assert cfg.train_cfg.max_epochs == 2.0 and cfg.val_dataloader is None


def test_pretrained_weights_that_do_not_exist(tmp_path):
    path = str(tmp_path / 'missing_r18.pth')
    backbone = MODELS.build(
        dict(
            type='mmpretrain.ResNet',
            depth=18,
            base_channels=16,
            stem_channels=16,
            init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(FileNotFoundError, match='missing_r18.pth.*not exist'):
        backbone.init_weights()


class Other(nn.Module):

    def __init__(self, width=3):
        super().__init__()
        self.conv = nn.Conv2d(width, 4, 1)
        self.fc = nn.Linear(4, 2)


def test_checkpoint_of_another_model_names_the_keys(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=Other().state_dict()), path)
    model = nn.Sequential()
    model.conv = nn.Conv2d(3, 4, 1)
    model.head = nn.Linear(4, 2)
    with pytest.raises(ValueError) as err:
        check_checkpoint_fits(model, path)
    msg = str(err.value)
    assert 'other.pth' in msg and 'does not fit the model Sequential' in msg
    assert '2 missing keys: head.weight, head.bias' in msg
    assert '2 unexpected keys: fc.weight, fc.bias' in msg
    # Same keys, other shapes: torch's size mismatch, named.
    torch.save(dict(state_dict=Other(width=5).state_dict()), path)
    with pytest.raises(ValueError, match=r'size mismatch for conv.weight'):
        check_checkpoint_fits(Other(), path)
    torch.save(dict(state_dict=Other().state_dict()), path)
    check_checkpoint_fits(Other(), path)  # fits: no error


def test_test_tool_refuses_a_checkpoint_with_a_pickled_callable(tmp_path):
    path, marker = str(tmp_path / 'evil.pth'), tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'x': _CreatesFile(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth.*posix.system'):
        check_checkpoint_fits(Other(), path)
    assert not marker.exists()


def test_output_dir_without_write_permission(tmp_path, monkeypatch,
                                             log_messages):
    out = str(tmp_path / 'readonly')
    real_makedirs = os.makedirs

    def makedirs(path, *args, **kwargs):
        if str(path).startswith(out):
            raise PermissionError(errno.EACCES, 'Permission denied', path)
        return real_makedirs(path, *args, **kwargs)

    # Simulated: the tests run as root, for whom chmod does not deny.
    monkeypatch.setattr(os, 'makedirs', makedirs)
    assert run(
        samples(), output_dir=out) == {
            'pseudo_label_writer/num_failed': 2
        }
    log = log_messages()
    assert f'2 images could not be written under {out}' in log
    assert f"img0: PermissionError: [Errno 13] Permission denied: '{out}" \
        in log


def test_disk_full_while_writing_pseudo_labels(tmp_path, monkeypatch,
                                               log_messages):
    out = str(tmp_path / 'out')

    def save(image, path, *args, **kwargs):  # the PNG encoder's write
        with open(path, 'wb') as f:
            f.write(b'\x89PNG')  # a partial file in the temporary name
        raise OSError(errno.ENOSPC, 'No space left on device', path)

    monkeypatch.setattr(Image.Image, 'save', save)
    assert run(
        samples(), output_dir=out) == {
            'pseudo_label_writer/num_failed': 2
        }
    assert 'img1: OSError: [Errno 28] No space left on device' in \
        log_messages()
    assert os.listdir(osp.join(out, 'pseudo_labels')) == []


CAM_CONFIG = 'configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py'


@pytest.fixture(scope='module')
def synthvoc_of_20(tmp_path_factory):
    """A SynthVOC of 20 classes (its classes.txt says so) and a checkpoint
    of the 10-class CAM config."""
    tmp = tmp_path_factory.mktemp('synthvoc_20')
    root = small_synthvoc(
        tmp / 'synthvoc', num_train=4, num_train_subset=2, num_classes=20)
    register_all_modules()
    model = MODELS.build(Config.fromfile(CAM_CONFIG).model)
    ckpt = str(tmp / 'cam10.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    return root, ckpt


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_class_file_of_20_with_num_classes_10_names_the_key(
        synthvoc_of_20, tmp_path, tool):
    root, ckpt = synthvoc_of_20
    options = [
        f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
        for key in (f'dataset.data_root={root}', 'num_workers=0',
                    'persistent_workers=False')
    ] + ['model.backbone.init_cfg=None']
    args = ['python', f'tools/{tool}.py', CAM_CONFIG
            ] + ([ckpt] if tool == 'test' else
                 []) + ['--work-dir', tmp_path, '--cfg-options', *options]
    code, log = run_tool(args, check=False)
    assert code != 0
    assert 'ValueError: model.head.num_classes=10 but the dataset has 20 ' \
        'foreground classes' in log, log[-3000:]
    assert f"class file '{root}/classes.txt'" in log
    assert 'Set model.head.num_classes=20' in log
