"""``tools/test.py --out`` when images fail, and when the dir is in use.

A CAM export whose first pseudo-label writes fail (a full disk, injected)
writes every other image, exits non-zero and says how to finish; the same
command run again writes every image and exits 0. A second
export into an ``--out`` dir held by another run is refused at once.
"""
import os
import textwrap

from rca_mm.utils.workdir_lock import WorkDirLock
from ..conftest import REPO, run_tool
from .test_dist_export import setup  # noqa: F401

# Test-only: the first FAIL_FIRST pseudo-label writes of the process fail
# with ENOSPC.
FAIL_WRITES = '''
import errno
import os
from rca_mm.evaluation.metrics import pseudo_label_writer

_save = pseudo_label_writer.save_label_png
_calls = []


def failing_save(labels, path):
    _calls.append(path)
    if len(_calls) <= int(os.environ.get('FAIL_FIRST', '0')):
        raise OSError(errno.ENOSPC, 'No space left on device', path)
    _save(labels, path)


pseudo_label_writer.save_label_png = failing_save
'''


def export_args(tmp, cfg, ckpt, out):
    return [
        'python', 'tools/test.py', cfg, ckpt, '--out', out, '--work-dir',
        tmp / 'failures_work'
    ]


def test_failed_images_exit_non_zero_and_a_rerun_finishes(setup):  # noqa: F811
    tmp, cfg, ckpt, root = setup
    (tmp / 'fail_writes.py').write_text(FAIL_WRITES)
    failing_cfg = tmp / 'failing_cfg.py'
    failing_cfg.write_text(
        textwrap.dedent(f'''
        _base_ = ['{cfg}']
        custom_imports = dict(imports=['count_writes', 'fail_writes'])
        '''))
    out = tmp / 'failures'
    env = dict(
        PYTHONPATH=f'{tmp}:{REPO}',
        OMP_NUM_THREADS='1',
        WRITE_LOG=str(tmp / 'failures_writes.txt'))
    code, log = run_tool(
        export_args(tmp, failing_cfg, ckpt, out),
        env=dict(env, FAIL_FIRST='3'),
        check=False)
    assert code == 1, log[-3000:]
    assert '3 images failed (named above) and have no output' in log
    assert 'run the same command again' in log
    assert "No space left on device: '" in log
    assert '3 images could not be written' in log
    # The model labelled every image; all are scored.
    assert 'PseudoLabelMetric: 15 images, 15 labelled, 0 failed' in log
    labels = sorted(os.listdir(out / 'pseudo_labels'))
    assert len(labels) == 15 - 3
    assert not (out / '.rca_mm.lock').exists()

    log = run_tool(export_args(tmp, failing_cfg, ckpt, out), env=env)
    assert 'could not be written' not in log and '0 failed' in log
    assert len(os.listdir(out / 'pseudo_labels')) == 15


def test_export_into_a_held_out_dir_is_refused(setup, tmp_path):  # noqa: F811
    tmp, cfg, ckpt, _ = setup
    out = tmp_path / 'held'
    with WorkDirLock(str(out)):
        code, log = run_tool(
            export_args(tmp, cfg, ckpt, out),
            env=dict(PYTHONPATH=f'{tmp}:{REPO}'),
            check=False)
    assert code != 0
    assert f"output dir (--out) '{out}' is in use by another run" in log
    assert f'pid {os.getpid()}' in log
    assert not (out / 'pseudo_labels').exists()
