"""RNGStateHook: states that come back from a GPU resume, and a resume on a
process that sees fewer CUDA devices than the one that saved.

CUDA is emulated on CPU: a wrapper tensor that reports ``device='cuda'``
(what ``Runner.resume`` hands back on a GPU machine) and monkeypatched
``torch.cuda`` functions that behave like a process with one device.
"""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_map

import rca_mm.engine.hooks.rng_state_hook as rng_module
from rca_mm.engine.hooks.rng_state_hook import (RNGStateHook, get_rng_state,
                                                set_rng_state)


class FakeCudaTensor(torch.Tensor):
    """A tensor that reports ``device='cuda'`` and holds its data on CPU.

    ``torch.set_rng_state`` sees a CUDA tensor and refuses it, as it does
    the states that ``Runner.resume`` maps to the GPU; every operation on
    it returns the plain CPU result.
    """

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls, inner.shape, dtype=inner.dtype, device='cuda')
        wrapper.inner = inner
        return wrapper

    def __repr__(self):
        return f'FakeCudaTensor({self.inner!r})'

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):

        def unwrap(x):
            return x.inner if isinstance(x, FakeCudaTensor) else x

        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))


def to_fake_cuda(obj):
    """Every tensor of a nested checkpoint entry 'mapped to the GPU'."""
    return tree_map(
        lambda x: FakeCudaTensor(x) if isinstance(x, torch.Tensor) else x, obj)


def draws():
    """One draw from each generator the hook restores."""
    return (random.random(), float(np.random.rand()), torch.rand(4).tolist())


def test_fake_cuda_tensor_is_refused_by_torch():
    # The failure on a GPU resume, reproduced without a GPU.
    state = FakeCudaTensor(torch.get_rng_state())
    assert state.is_cuda
    with pytest.raises(TypeError, match='must be a torch.ByteTensor'):
        torch.set_rng_state(state)


@pytest.mark.parametrize('mapping', ['cuda', 'float'])
def test_states_mapped_off_cpu_are_restored(mapping):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    state = get_rng_state()
    expected = draws()
    if mapping == 'cuda':
        mapped = to_fake_cuda(state)
        assert mapped['torch'].is_cuda
    else:  # a copy that changed the dtype of the bytes
        mapped = dict(state, torch=state['torch'].float())
    draws()  # move every generator on
    set_rng_state(mapped)
    assert draws() == expected


def test_hook_restores_a_checkpoint_resumed_onto_the_gpu():
    torch.manual_seed(5)
    hook = RNGStateHook()
    hook._take_snapshot(SimpleNamespace())
    expected = draws()
    checkpoint = to_fake_cuda(dict(meta=dict(rng_state=hook._snapshot)))
    draws()
    resumed = RNGStateHook()
    resumed.after_load_checkpoint(None, checkpoint)
    runner = SimpleNamespace(iter=4, world_size=1, train_loop=None)
    resumed.before_train_iter(runner, 0)
    assert draws() == expected


@pytest.fixture
def one_visible_device(monkeypatch):
    """``torch.cuda`` as in a process that sees one GPU; the generator
    states set are recorded, and a device index past the visible ones
    raises ``IndexError`` as ``torch.cuda.default_generators[idx]`` does."""
    calls = []

    def set_cuda_state(new_state, device='cuda'):
        index = device if isinstance(device, int) else 0
        if index >= 1:
            raise IndexError('tuple index out of range')
        assert new_state.device.type == 'cpu'
        assert new_state.dtype == torch.uint8
        calls.append((index, new_state.clone()))

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'set_rng_state', set_cuda_state)
    monkeypatch.setattr(torch.cuda.random, 'set_rng_state', set_cuda_state)
    logs = []
    monkeypatch.setattr(rng_module, 'print_log',
                        lambda msg, **kwargs: logs.append((msg, kwargs)))
    return calls, logs


def test_fewer_visible_devices_restore_the_device_drawn_from(
        one_visible_device):
    calls, logs = one_visible_device
    cuda_states = [torch.full((16, ), i, dtype=torch.uint8) for i in range(4)]
    state = get_rng_state()
    # Saved by rank 2 of a torchrun run that saw 4 GPUs and drew on cuda:2,
    # resumed onto the GPU of a Slurm task that sees one.
    state.update(cuda=cuda_states, cuda_current=2)
    set_rng_state(to_fake_cuda(state))
    assert len(calls) == 1
    index, restored = calls[0]
    assert index == 0 and torch.equal(restored, cuda_states[2])
    assert len(logs) == 1
    message, kwargs = logs[0]
    assert kwargs['level'] == 30  # warning
    assert '4 devices' in message and 'sees 1' in message
    assert '[0, 1, 3]' in message


def test_fewer_visible_devices_without_saved_current_device(
        one_visible_device):
    # A checkpoint written before the current device was saved: device i
    # gets state i.
    calls, logs = one_visible_device
    cuda_states = [torch.full((8, ), i, dtype=torch.uint8) for i in range(2)]
    state = dict(get_rng_state(), cuda=cuda_states)
    set_rng_state(state)
    assert [i for i, _ in calls] == [0]
    assert torch.equal(calls[0][1], cuda_states[0])
    assert '[1]' in logs[0][0]


def test_as_many_visible_devices_restore_all_without_warning(
        one_visible_device, monkeypatch):
    calls, logs = one_visible_device
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    cuda_states = [torch.full((8, ), 7, dtype=torch.uint8)]
    state = dict(get_rng_state(), cuda=cuda_states, cuda_current=0)
    set_rng_state(to_fake_cuda(state))
    assert [i for i, _ in calls] == [0]
    assert torch.equal(calls[0][1], cuda_states[0])
    assert logs == []


@pytest.mark.parametrize('saved_world,world', [(2, 1), (1, 2)])
def test_resume_on_another_number_of_processes_warns_and_reseeds(
        monkeypatch, saved_world, world):
    logs = []
    monkeypatch.setattr(rng_module, 'print_log',
                        lambda msg, **kwargs: logs.append((msg, kwargs)))
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    saved = [get_rng_state() for _ in range(saved_world)]
    after_snapshot = draws()
    hook = RNGStateHook()
    hook.after_load_checkpoint(None, dict(meta=dict(rng_state=saved)))
    runner = SimpleNamespace(iter=4, world_size=world, train_loop=None)
    hook.before_train_iter(runner, 0)
    # Not restored: the generators go on from where they were.
    assert draws() != after_snapshot
    assert hook._pending is None  # warned once, not at every iteration
    hook.before_train_iter(runner, 1)
    assert logs == [
        (f'RNGStateHook: the checkpoint was written by a run of {saved_world} '
         f'processes and this run has {world}: the saved RNG states are not '
         'restored, the random draws (data augmentation, region mixup, '
         "dropout) follow this run's seed instead, and the resumed run is "
         'not bit-identical to an uninterrupted one. Resume on '
         f'{saved_world} processes for an exact continuation',
         dict(logger='current', level=30))
    ]
