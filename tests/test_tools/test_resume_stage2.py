"""Kill a stage-2 (DeepLabV2, iteration-based) training with SIGKILL and
resume it.

The SynthVOC DeepLabV2 config on 8 tiny images (their ground truth stands
in for the pseudo labels), 6 iterations of 2 images, a checkpoint every 3
iterations, one data worker (``persistent_workers=False``: the setting in
which an iteration-based resume replays the augmentation exactly,
docs/reliability.md), on CPU with one thread. Run A is uninterrupted; run B
SIGKILLs its process group (itself and its data worker) at the end of
iteration 5, after ``iter_3.pth``, and is resumed with ``--resume``. The
final checkpoints must be bit-identical (weights, optimizer, LR scheduler,
RNG states), and so must the batches of every iteration after the
augmentation (random resize, crop and flip).
"""
import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from ..conftest import REPO, run_tool, small_synthvoc
from .conftest import train_args_on, train_py_with_hook
from .test_kill_resume import assert_same

CONFIG = 'configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py'
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
MAX_ITERS, INTERVAL, KILL_AT = 6, 3, 5

# Test-only: run tools/train.py with a hook that writes a digest of every
# iteration's batch (after the augmentation) to batches.jsonl in the work
# dir and, with KILL_AT_ITER set, SIGKILLs the process group at the end of
# that iteration (1-based).
WRAPPER = train_py_with_hook(
    '''
import hashlib
import json
import os
import signal

from mmengine.hooks import Hook


class RecordAndKill(Hook):
    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        digest = hashlib.sha256()
        for img, sample in zip(data_batch['inputs'],
                               data_batch['data_samples']):
            digest.update(img.numpy().tobytes())
            digest.update(sample.gt_sem_seg.data.numpy().tobytes())
            digest.update(repr((sample.img_path, sample.img_shape,
                                sample.flip)).encode())
        with open(os.path.join(runner.work_dir, 'batches.jsonl'), 'a') as f:
            f.write(json.dumps([runner.iter + 1, digest.hexdigest()]) + '\\n')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == int(os.environ.get('KILL_AT_ITER', 0)):
            print(f'killing my process group at iteration {runner.iter + 1}',
                  flush=True)
            os.killpg(os.getpgid(0), signal.SIGKILL)
''', 'RecordAndKill')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return small_synthvoc(
        tmp_path_factory.mktemp('synthvoc') / 'synthvoc',
        num_train=8,
        num_train_subset=2)


def train_args(wrapper, work_dir, root, *extra):
    return [sys.executable, str(wrapper)] + train_args_on(
        root,
        CONFIG,
        work_dir,
        *extra,
        options=[
            'train_dataloader.dataset.data_prefix.seg_map_path='
            'SegmentationClassAug',
            'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=1',
            'train_dataloader.persistent_workers=False',
            'model.backbone.init_cfg=None',
            f'train_cfg.max_iters={MAX_ITERS}',
            f'default_hooks.checkpoint.interval={INTERVAL}',
            'default_hooks.checkpoint.max_keep_ckpts=1',
        ])


def batches(work_dir):
    """{iteration: digest} of a run's batches; for a killed and resumed run,
    those of the resumed run where an iteration was trained twice."""
    records = [
        json.loads(line)
        for line in open(work_dir / 'batches.jsonl').read().splitlines()
    ]
    return records, dict(records)


def test_stage2_sigkill_then_resume_equals_an_uninterrupted_run(
        data_root, tmp_path):
    wrapper = tmp_path / 'record_and_kill.py'
    wrapper.write_text(WRAPPER)
    a_dir, b_dir = tmp_path / 'a', tmp_path / 'b'
    a_dir.mkdir()
    b_dir.mkdir()
    with open(a_dir / 'out.log', 'w') as a_log, \
            open(b_dir / 'out.log', 'w') as b_log:
        run_a = subprocess.Popen(
            train_args(wrapper, a_dir, data_root),
            cwd=REPO,
            env=dict(os.environ, **ENV),
            stdout=a_log,
            stderr=subprocess.STDOUT,
            start_new_session=True)
        run_b = subprocess.Popen(
            train_args(wrapper, b_dir, data_root),
            cwd=REPO,
            env=dict(os.environ, **ENV, KILL_AT_ITER=str(KILL_AT)),
            stdout=b_log,
            stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            code_b = run_b.wait(timeout=300)
            code_a = run_a.wait(timeout=300)
        finally:
            for run in (run_a, run_b):
                try:
                    os.killpg(run.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert code_a == 0, open(a_dir / 'out.log').read()[-3000:]
    b_out = open(b_dir / 'out.log').read()
    assert code_b == -signal.SIGKILL, b_out[-3000:]
    assert f'killing my process group at iteration {KILL_AT}' in b_out
    assert sorted(p.name for p in b_dir.glob('*.pth')) == ['iter_3.pth']

    log = run_tool(
        train_args(wrapper, b_dir, data_root, '--resume'),
        env=ENV,
        timeout=300)
    assert re.search(r'resumed epoch: 0, iter: 3', log), log[-3000:]
    assert 'took over the stale lock' in log
    assert 'RNGStateHook: RNG states restored (iteration 3)' in log
    assert f'Iter(train) [4/{MAX_ITERS}]' in log
    assert f'Iter(train) [3/{MAX_ITERS}]' not in log

    a = torch.load(a_dir / f'iter_{MAX_ITERS}.pth', weights_only=True)
    b = torch.load(b_dir / f'iter_{MAX_ITERS}.pth', weights_only=True)
    assert a['meta']['iter'] == b['meta']['iter'] == MAX_ITERS
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_same(a[part], b[part], part)
    assert_same(a['meta']['rng_state'], b['meta']['rng_state'], 'rng_state')
    assert sorted(p.name for p in b_dir.glob('*.pth')) == ['iter_6.pth']

    # The augmented batches: run B trained 1-5, was killed, trained 4-6
    # again from the checkpoint; every batch equals run A's.
    a_records, a_batches = batches(a_dir)
    b_records, b_batches = batches(b_dir)
    assert [i for i, _ in a_records] == list(range(1, MAX_ITERS + 1))
    assert [i for i, _ in b_records] == [1, 2, 3, 4, 5, 4, 5, 6]
    assert b_batches == a_batches
    assert b_records[3:5] == b_records[5:7]  # 4 and 5, before and after
    assert len(set(a_batches.values())) == MAX_ITERS
