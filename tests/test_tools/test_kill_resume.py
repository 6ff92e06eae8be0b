"""Kill a SynthVOC RCA training with SIGKILL and resume it.

Full RCA on OAA (rca-oaa config: memory bank, prototypes, region mixup,
OAA store), 2 epochs of 3 iterations on 24 tiny images, on CPU with one
thread. Run A is uninterrupted; run B kills itself with SIGKILL at the end
of an iteration of epoch 2 (after epoch_1.pth) drawn with a seeded
generator (``KILL_RESUME_SEED``, default 0; the iteration is printed) and is
resumed with ``--resume``. The final checkpoints must be bit-identical:
weights, bank buffers and bookkeeping, prototypes, optimizer, LR schedulers
and RNG states, and so must the OAA stores.
"""
import os
import random
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from ..conftest import REPO, run_tool, small_synthvoc
from .conftest import train_args_on, train_py_with_hook

CONFIG = 'configs/synthvoc/rca-oaa_r18-w16_8e_synthvoc-112x112.py'
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

# Test-only: run tools/train.py with a hook that SIGKILLs the process at
# the end of iteration KILL_AT_ITER (1-based, over the whole run).
KILL_AT_ITER = train_py_with_hook(
    '''
import os
import signal

from mmengine.hooks import Hook


class KillAtIter(Hook):
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == int(os.environ['KILL_AT_ITER']):
            print(f'killing myself at iteration {runner.iter + 1}',
                  flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
''', 'KillAtIter')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return small_synthvoc(
        tmp_path_factory.mktemp('synthvoc') / 'synthvoc',
        num_train=24,
        num_train_subset=4)


def train_args(work_dir, root, *extra):
    return [sys.executable] + train_args_on(
        root,
        CONFIG,
        work_dir,
        *extra,
        options=[
            'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_dataloader.dataset.pipeline.1.scale=(64,64)',
            'model.data_preprocessor.size=(64,64)',
            'train_cfg.max_epochs=2',
            'model.backbone.init_cfg=None',
            # Write every region to the bank (the paper's 0.7 needs
            # training).
            'model.head.gate_threshold=0.0',
            'default_hooks.checkpoint.max_keep_ckpts=1'
        ])


def start(args, log, env=None):
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=dict(os.environ, **ENV, **(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT)


def assert_same(a, b, path='checkpoint'):
    """Recursive bit-equality of two loaded checkpoints' contents."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, path
        assert torch.equal(a, b), f'{path} differs'
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{path}: keys {set(a) ^ set(b)}'
        for k in a:
            assert_same(a[k], b[k], f'{path}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{path}[{i}]')
    else:
        assert a == b, f'{path}: {a!r} != {b!r}'


def assert_live_rca_state(a, b):
    """RCA's bank and prototypes in the state dicts ``a`` and ``b``: live
    (entries written with non-zero features, valid finite non-zero
    prototypes) in both, and bit-identical."""
    for sd in (a, b):
        written = sd['head.memory_bank.written']
        assert written.any(), 'the bank holds no entry'
        feats = sd['head.memory_bank.feats'][written].float()
        assert (feats.abs().sum(-1) > 0).all(), 'a written entry is 0'
        valid = sd['head.aggregation.prototype_valid']
        assert valid.any(), 'no prototype is valid'
        protos = sd['head.aggregation.prototypes'][valid].float()
        assert torch.isfinite(protos).all()
        assert (protos.abs().sum(-1) > 0).all(), 'a valid prototype is 0'
    for key in ('head.memory_bank.written', 'head.memory_bank.feats',
                'head.aggregation.prototype_valid',
                'head.aggregation.prototypes'):
        assert_same(a[key], b[key], key)


def test_sigkill_then_resume_equals_an_uninterrupted_run(data_root, tmp_path):
    a_dir, b_dir = tmp_path / 'a', tmp_path / 'b'
    a_dir.mkdir()
    b_dir.mkdir()
    seed = int(os.environ.get('KILL_RESUME_SEED', '0'))
    kill_at = random.Random(seed).randint(4, 6)  # epoch 2: iterations 4-6
    print(f'run B is killed at iteration {kill_at} '
          f'(KILL_RESUME_SEED={seed})')
    killer = tmp_path / 'kill_at_iter.py'
    killer.write_text(KILL_AT_ITER)
    with open(a_dir / 'out.log', 'w') as a_log, \
            open(b_dir / 'out.log', 'w') as b_log:
        run_a = start(train_args(a_dir, data_root), a_log)
        run_b = start(
            [sys.executable, str(killer)] + train_args(b_dir, data_root)[1:],
            b_log,
            env=dict(KILL_AT_ITER=str(kill_at)))
        code_b = run_b.wait(timeout=300)
        assert run_a.wait(timeout=300) == 0, open(a_dir / 'out.log').read()
    b_out = open(b_dir / 'out.log').read()
    assert code_b == -signal.SIGKILL, b_out[-3000:]
    assert f'killing myself at iteration {kill_at}' in b_out
    assert (b_dir / 'epoch_1.pth').exists()
    assert not (b_dir / 'epoch_2.pth').exists()
    log = run_tool(train_args(b_dir, data_root, '--resume'), env=ENV)
    assert re.search(r'resumed epoch: 1, iter: 3', log), log[-3000:]
    # The killed run's work-dir lock is stale: taken over.
    assert 'took over the stale lock' in log
    assert 'RNGStateHook: RNG states restored' in log
    a = torch.load(a_dir / 'epoch_2.pth', weights_only=True)
    b = torch.load(b_dir / 'epoch_2.pth', weights_only=True)
    assert_live_rca_state(a['state_dict'], b['state_dict'])
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_same(a[part], b[part], part)
    assert_same(a['meta']['rng_state'], b['meta']['rng_state'], 'rng_state')
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    # max_keep_ckpts=1: the previous checkpoint went after the new one.
    assert sorted(p.name for p in b_dir.glob('*.pth')) == ['epoch_2.pth']

    # The OAA store (outside the checkpoint): replayed iterations re-take
    # the element-wise maximum with the same maps.
    # No temporary file is left (a killed writer's would be removed by the
    # resumed run's first write into the store); `.locks` holds the
    # per-image file locks.
    def entries(d):
        files = set(os.listdir(d / 'oaa_store')) - {'.locks'}
        assert all(
            n.endswith('.npz') and not n.startswith('.') for n in files), files
        return sorted(files)

    names = entries(a_dir)
    assert names, 'OAA stored nothing'
    assert names == entries(b_dir)
    for name in names:
        with np.load(a_dir / 'oaa_store' / name) as x, \
                np.load(b_dir / 'oaa_store' / name) as y:
            assert_same(dict(x), dict(y), name)
