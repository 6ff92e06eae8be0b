"""The helpers of tests/conftest.py that other tests rely on."""
import time

import pytest

from tests.conftest import REPO, run_tool


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for init counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def _gone(pid: int) -> bool:
    """Whether ``pid`` is gone within 5 s (SIGKILL is delivered
    asynchronously)."""
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    return not _alive(pid)


def test_run_tool_kills_the_whole_process_group_on_timeout(tmp_path):
    """A launcher past its time is killed with the workers it started
    (torchrun's ranks), not alone, and the test fails with its output."""
    pid_file = tmp_path / 'worker.pid'
    script = f'sleep 300 & echo $! > {pid_file}; echo started; wait'
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as err:
        run_tool(['bash', '-c', script], timeout=3)
    assert time.monotonic() - start < 60
    assert 'ran past its 3 s and was killed' in str(err.value)
    assert 'started' in str(err.value)
    worker = int(pid_file.read_text())
    assert _gone(worker)


def test_run_tool_leaves_no_worker_of_a_finished_command(tmp_path):
    pid_file = tmp_path / 'worker.pid'
    out = run_tool([
        'bash', '-c', f'sleep 300 > /dev/null 2>&1 & echo $! > {pid_file}; '
        'echo done'
    ])
    assert out == 'done\n'
    worker = int(pid_file.read_text())
    assert _gone(worker)
    code, out = run_tool(['bash', '-c', 'echo no; exit 3'], check=False)
    assert (code, out) == (3, 'no\n')


def test_a_test_stopped_by_pytest_timeout_leaves_no_worker(tmp_path):
    """pytest-timeout interrupts the test inside ``run_tool``: the command's
    process group goes with it."""
    pid_file = tmp_path / 'worker.pid'
    test = tmp_path / 'test_hang.py'
    test.write_text(
        'import sys\n'
        f'sys.path.insert(0, {REPO!r})\n'
        'from tests.conftest import run_tool\n\n\n'
        'def test_hang():\n'
        f"    run_tool(['bash', '-c', 'sleep 300 & echo $! > {pid_file}; "
        "wait'], timeout=300)\n")
    code, out = run_tool([
        'python', '-m', 'pytest',
        str(test), '-q', '-p', 'no:cacheprovider', '--timeout=5', '--rootdir',
        str(tmp_path), '-c', '/dev/null'
    ],
                         check=False)
    assert code == 1 and 'Timeout' in out, out
    worker = int(pid_file.read_text())
    assert _gone(worker)
