"""Kill a 2-process RCA training with SIGKILL and resume it, and resume a
2-process checkpoint in one process.

The RCA SynthVOC config (bank, contrast with region mixup after the
warm-up epoch, k-means prototypes) through tools/dist_train.sh: 2 CPU
processes (gloo), 16 tiny images, 4 per process, 2 epochs of 2 iterations,
one thread each. Run A is uninterrupted; in run B, each rank SIGKILLs the
launcher's process group and its own at the end of iteration 3 (the first
of epoch 2, after ``epoch_1.pth``), and run B is resumed with ``--resume``
on 2 processes. The final checkpoints must be bit-identical:
weights, bank, prototypes, optimizer, LR schedulers and both ranks' RNG
states. ``epoch_1.pth`` resumed in one process trains on with a warning
that names both numbers of processes.
"""
import os
import re
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from ..conftest import REPO, run_dist_tool, run_tool
from .conftest import two_process_rca_config
from .test_kill_resume import assert_live_rca_state, assert_same

KILL_AT = 3

# Test-only: with KILL_AT_ITER set, every rank at the end of that iteration
# (1-based) SIGKILLs the launcher's process group (bash and torchrun) and
# its own (torchrun starts each worker in a session of its own).
KILL_HOOK = '''
import os
import signal

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from rca_mm.registry import HOOKS


@HOOKS.register_module()
class KillGroupAtIterHook(Hook):
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        # Taken while torchrun runs: once the other rank has killed it,
        # this process's parent is another process.
        self.launcher_group = os.getpgid(os.getppid())
        assert self.launcher_group != os.getpgid(0)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        kill_at = int(os.environ.get('KILL_AT_ITER', 0))
        if runner.iter + 1 != kill_at:
            return
        print(f'rank {get_rank()} (pid {os.getpid()}): killing the '
              f'launcher and myself at iteration {kill_at}', flush=True)
        try:
            os.killpg(self.launcher_group, signal.SIGKILL)
        except ProcessLookupError:  # the other rank was first
            pass
        os.killpg(os.getpgid(0), signal.SIGKILL)
'''


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume_dist')
    cfg = two_process_rca_config(
        tmp,
        'resume_dist_cfg.py',
        'kill_group_hook',
        KILL_HOOK,
        'KillGroupAtIterHook',
        extra='''
        default_hooks = dict(
            logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=1))
        ''')
    return tmp, cfg


def alive(pid, wait=10.0):
    """Whether process ``pid`` still runs after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)


def dist_train(cfg, work_dir, env, *extra, check=True):
    return run_dist_tool(
        ['bash', 'tools/dist_train.sh', cfg, 2, '--work-dir', work_dir] +
        list(extra),
        env=env,
        check=check,
        timeout=300)


def test_two_process_sigkill_then_resume_equals_an_uninterrupted_run(config):
    tmp, cfg = config
    env = dict(PYTHONPATH=f'{tmp}:{REPO}', OMP_NUM_THREADS='1')
    a_dir, b_dir, one_dir = tmp / 'a', tmp / 'b', tmp / 'one'
    # Two launcher runs at a time (the wall time of the test halves).
    with ThreadPoolExecutor(2) as pool:
        run_a = pool.submit(dist_train, cfg, a_dir, env)
        code, log = dist_train(
            cfg, b_dir, dict(env, KILL_AT_ITER=str(KILL_AT)), check=False)
        run_a.result()
    assert code == -signal.SIGKILL, log[-3000:]
    pids = re.findall(
        rf'rank (\d) \(pid (\d+)\): killing the launcher and myself at '
        rf'iteration {KILL_AT}', log)
    assert sorted(rank for rank, _ in pids) == ['0', '1'], log[-3000:]
    for _, pid in pids:  # no worker survived
        assert not alive(int(pid)), f'pid {pid} is still running'
    assert sorted(p.name for p in b_dir.glob('*.pth')) == ['epoch_1.pth']
    one_dir.mkdir()
    shutil.copy(b_dir / 'epoch_1.pth', one_dir)
    (one_dir / 'last_checkpoint').write_text(str(one_dir / 'epoch_1.pth'))

    with ThreadPoolExecutor(2) as pool:
        run_one = pool.submit(
            run_tool, [
                'python', 'tools/train.py', cfg, '--work-dir', one_dir,
                '--resume'
            ],
            env=env,
            timeout=300)
        log = dist_train(cfg, b_dir, env, '--resume')
        one_log = run_one.result()
    assert 'resumed epoch: 1, iter: 2' in log, log[-3000:]
    assert 'took over the stale lock' in log
    assert 'RNGStateHook: RNG states restored (iteration 2)' in log
    a = torch.load(a_dir / 'epoch_2.pth', weights_only=True)
    b = torch.load(b_dir / 'epoch_2.pth', weights_only=True)
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    assert len(a['meta']['rng_state']) == 2  # one per rank
    assert_live_rca_state(a['state_dict'], b['state_dict'])
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_same(a[part], b[part], part)
    assert_same(a['meta']['rng_state'], b['meta']['rng_state'], 'rng_state')

    # The 2-process checkpoint resumed in one process: trains on, warned.
    assert 'resumed epoch: 1, iter: 2' in one_log, one_log[-3000:]
    assert ('RNGStateHook: the checkpoint was written by a run of 2 '
            'processes and this run has 1: the saved RNG states are not '
            'restored') in one_log, one_log[-3000:]
    assert 'RNG states restored' not in one_log
    one = torch.load(one_dir / 'epoch_2.pth', weights_only=True)
    assert one['meta']['epoch'] == 2 and len(one['meta']['rng_state']) == 1
