import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

import rca_mm  # noqa: F401  (registers the allow-list)
from rca_mm.utils import UnsafeCheckpointError, safe_torch_load
from rca_mm.utils.safe_checkpoint import (CorruptCheckpointError,
                                          history_buffer_getattr)


class _CreatesFile:
    """Unpickling this runs ``os.system('touch <path>')``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


class _Getattr:

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return getattr, (self.obj, self.name)


def _mmengine_like_checkpoint():
    hub = MessageHub.get_instance('test_safe_checkpoint')
    for i in range(5):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
    hub.update_info('iter', 5)
    return dict(
        meta=dict(
            epoch=0,
            iter=5,
            seed=np.int64(3),
            mean=np.float32(0.5),
            dataset_meta=dict(classes=('a', 'b'), palette=[[0, 0, 0]])),
        state_dict=dict(weight=torch.arange(4.)),
        message_hub=hub.state_dict())


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = safe_torch_load(str(path))
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(
        np.mean([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]))
    assert buf.current() == pytest.approx(0.2)
    assert ckpt['meta']['seed'] == 3
    assert torch.equal(ckpt['state_dict']['weight'], torch.arange(4.))
    # The plain torch.load default (weights_only=True on torch>=2.6), which
    # mmengine calls, accepts it too.
    assert torch.load(str(path))['meta']['iter'] == 5


def test_pickled_callable_is_refused_and_not_run(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _CreatesFile(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(str(path))
    msg = str(info.value)
    assert str(path) in msg and 'allow-list' in msg and 'system' in msg
    assert not marker.exists()

    # The same refusal through mmengine's own loading path.
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()


def test_getattr_stand_in_resolves_only_history_buffer_statistics(tmp_path):
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(os, 'system')

    ok, bad = tmp_path / 'ok.pth', tmp_path / 'bad.pth'
    torch.save({'f': _Getattr(HistoryBuffer, 'max')}, ok)
    assert safe_torch_load(str(ok))['f'] is HistoryBuffer.max
    torch.save({'f': _Getattr(HistoryBuffer, 'register_statistics')}, bad)
    with pytest.raises(UnsafeCheckpointError, match='register_statistics'):
        safe_torch_load(str(bad))


def test_missing_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint(torch.nn.Linear(1, 1), str(missing))


class _Plain:
    """An arbitrary class: its instances pickle as a GLOBAL + NEWOBJ."""


@pytest.mark.parametrize('payload, name', [
    (_Plain(), f'global {__name__}._Plain'),
    (print, 'global print'),
    (_CreatesFile('/nonexistent/marker'), 'global posix.system'),
])
def test_refusal_names_the_refused_global(tmp_path, payload, name):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': payload}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(str(path))
    assert f'({name})' in str(info.value)
    assert 'torch.load.html' not in str(info.value)


def test_truncated_checkpoint_names_the_file_and_an_intact_one(tmp_path):
    older, last = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {'w': torch.ones(64)}}, older)
    torch.save({'state_dict': {'w': torch.ones(64)}}, last)
    last.write_bytes(last.read_bytes()[:200])  # killed while writing
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint(torch.nn.Linear(1, 1), str(last))
    msg = str(info.value)
    assert f"checkpoint '{last}' is truncated or corrupt" in msg
    assert 'failed finding central directory' in msg
    assert f"Intact checkpoints next to it, newest first: '{older}'" in msg
    assert f'--resume --cfg-options load_from={older}' in msg

    older.write_bytes(b'')  # an empty file, and nothing intact left
    with pytest.raises(
            CorruptCheckpointError, match='empty file.*No intact checkpoint'):
        safe_torch_load(str(older))
