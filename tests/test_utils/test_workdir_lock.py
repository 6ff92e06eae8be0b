"""WorkDirLock: one run per directory, stale locks taken over."""
import json
import os
import socket
import subprocess
import sys

import pytest

from rca_mm.utils.workdir_lock import (LOCK_NAME, WorkDirLock,
                                       WorkDirLockedError, launcher_rank,
                                       lock_dir)


def dead_pid() -> int:
    """The pid of a child that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def write_record(directory, pid, command='train.py', host=None):
    """Write a lock record of ``pid`` running ``command`` on ``host``
    (default: this host), started on 2026-01-01."""
    directory.mkdir(exist_ok=True)
    (directory / LOCK_NAME).write_text(
        json.dumps(
            dict(
                host=host or socket.gethostname(),
                pid=pid,
                started='2026-01-01 00:00:00 UTC',
                command=command)))


def test_holder_is_recorded_and_released(tmp_path):
    work_dir = tmp_path / 'work'
    with WorkDirLock(str(work_dir)) as lock:
        record = json.loads((work_dir / LOCK_NAME).read_text())
        assert record['host'] == socket.gethostname()
        assert record['pid'] == os.getpid()
        assert record['started'] and sys.argv[0] in record['command']
        assert lock.path == str(work_dir / LOCK_NAME)
    assert not (work_dir / LOCK_NAME).exists()
    with WorkDirLock(str(work_dir)):  # free again
        pass


def test_released_when_the_run_raises(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with WorkDirLock(str(tmp_path)):
            1 / 0
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_run_into_a_held_dir_is_refused(tmp_path):
    holder = subprocess.Popen([
        sys.executable, '-c',
        'import sys; from rca_mm.utils.workdir_lock import WorkDirLock\n'
        f'with WorkDirLock({str(tmp_path)!r}):\n'
        '    print("held", flush=True)\n'
        '    sys.stdin.read()'
    ],
                              stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(WorkDirLockedError) as err:
            WorkDirLock(str(tmp_path), what='work dir (--work-dir)').acquire()
        msg = str(err.value)
        assert f"work dir (--work-dir) '{tmp_path}' is in use" in msg
        assert f'pid {holder.pid} on host {socket.gethostname()!r}' in msg
        assert 'started 20' in msg and 'python -c' in msg
        # Refused without touching the holder's record.
        assert json.loads(
            (tmp_path / LOCK_NAME).read_text())['pid'] == holder.pid
    finally:
        holder.stdin.close()
        holder.wait()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_killed_run_is_taken_over_with_a_warning(
        tmp_path, log_messages):
    pid = dead_pid()
    write_record(tmp_path, pid, command='train.py X')
    with WorkDirLock(str(tmp_path)):
        assert json.loads(
            (tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
    log = log_messages()
    assert 'took over the stale lock' in log
    assert f'pid {pid} on host' in log and 'train.py X' in log


def test_record_of_a_live_process_is_refused_without_flock(tmp_path):
    """A record naming a live process of this host (a file system where
    the flock did not exclude it) is not taken over."""
    parent = os.getppid()
    write_record(tmp_path, parent)
    with pytest.raises(WorkDirLockedError, match=f'pid {parent} on host'):
        WorkDirLock(str(tmp_path)).acquire()
    assert (tmp_path / LOCK_NAME).exists()


def test_record_from_another_host_is_refused_naming_the_file(tmp_path):
    write_record(tmp_path, 1, host='elsewhere')
    with pytest.raises(WorkDirLockedError) as err:
        WorkDirLock(str(tmp_path)).acquire()
    assert "host 'elsewhere'" in str(err.value)
    assert f'remove {str(tmp_path / LOCK_NAME)!r}' in str(err.value)


def test_rank_zero_holds_it_for_every_rank(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    assert launcher_rank('pytorch') == 1
    assert launcher_rank('none') == 0
    with lock_dir(str(tmp_path), 'pytorch'):
        assert not (tmp_path / LOCK_NAME).exists()
    monkeypatch.setenv('RANK', '0')
    with lock_dir(str(tmp_path), 'pytorch'):
        assert (tmp_path / LOCK_NAME).exists()
    monkeypatch.setenv('SLURM_PROCID', '3')
    assert launcher_rank('slurm') == 3


def test_record_cut_short_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"host": "h')  # killed mid-write
    with WorkDirLock(str(tmp_path)):
        assert json.loads(
            (tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
