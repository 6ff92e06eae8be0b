"""Atomic writes: the umask's mode, errors naming the file, stale
temporaries of killed writers removed."""
import errno
import os
import signal
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest

from rca_mm.fileio import (atomic, atomic_open, atomic_write, read_label_png,
                           remove_stale_temporaries, save_label_png)


@pytest.fixture
def umask():
    """Set the process's umask for the test, restoring it after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('mask', [0o022, 0o002, 0o077])
def test_outputs_get_the_mode_of_the_umask(tmp_path, umask, mask):
    umask(mask)
    with open(tmp_path / 'plain', 'w'):
        pass
    with atomic_open(str(tmp_path / 'a.pth'), 'wb') as f:
        f.write(b'x')
    atomic_write(
        str(tmp_path / 'b.png'), lambda tmp: open(tmp, 'wb').write(b'x'))
    assert mode(tmp_path / 'plain') == 0o666 & ~mask
    assert mode(tmp_path / 'a.pth') == 0o666 & ~mask
    assert mode(tmp_path / 'b.png') == 0o666 & ~mask


def test_write_errors_name_the_final_file(tmp_path):
    path = str(tmp_path / 'label.png')

    def full(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'\x89PNG')
        raise OSError(errno.ENOSPC, 'No space left on device', tmp)

    with pytest.raises(OSError) as err:
        atomic_write(path, full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == path
    assert str(err.value) == \
        f"[Errno 28] No space left on device: '{path}'"
    with pytest.raises(OSError) as err:
        with atomic_open(path):
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert err.value.filename == path
    # An error about another file keeps its own name.
    with pytest.raises(FileNotFoundError) as err:
        with atomic_open(path):
            open(tmp_path / 'nope')
    assert err.value.filename == str(tmp_path / 'nope')
    assert os.listdir(tmp_path) == []


def test_temporary_of_a_killed_writer_is_removed_by_the_next_one(
        tmp_path, monkeypatch):
    # A writer SIGKILLed between its write and the rename.
    code = ('import os, signal; from rca_mm.fileio import '
            'atomic_write; atomic_write({!r}, lambda tmp: (open(tmp, "wb")'
            '.write(b"x"), os.kill(os.getpid(), signal.SIGKILL)))')
    proc = subprocess.run(
        [sys.executable, '-c',
         code.format(str(tmp_path / 'img0.png'))])
    assert proc.returncode == -signal.SIGKILL
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith('.img0.png.')
    assert left[0].endswith('.tmp.png')
    # Temporaries of live writers and of other hosts stay.
    live = f'.img1.png.{socket.gethostname()}.{os.getppid()}.0123abcd.tmp.png'
    other = '.img2.png.elsewhere.1234.0123abcd.tmp.png'
    for name in (live, other):
        (tmp_path / name).write_bytes(b'x')
    monkeypatch.setattr(atomic, '_CLEANED', set())
    atomic_write(
        str(tmp_path / 'img3.png'), lambda tmp: open(tmp, 'wb').write(b'x'))
    assert sorted(os.listdir(tmp_path)) == sorted([live, other, 'img3.png'])
    assert remove_stale_temporaries(str(tmp_path)) == 0


def test_atomic_write_crash_leaves_nothing(tmp_path):
    path = str(tmp_path / 'a.png')

    def crash(tmp):
        save_label_png(np.ones((2, 2), np.uint8), tmp)
        assert tmp.endswith('.png') and os.path.isfile(tmp)
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, crash)
    assert os.listdir(tmp_path) == []
    # An existing file is left as it was.
    save_label_png(np.zeros((2, 2), np.uint8), path)
    with pytest.raises(OSError):
        atomic_write(path, crash)
    np.testing.assert_array_equal(read_label_png(path), np.zeros((2, 2)))
    assert os.listdir(tmp_path) == ['a.png']
    atomic_write(path, lambda tmp: save_label_png(np.full((2, 2), 3), tmp))
    np.testing.assert_array_equal(read_label_png(path), np.full((2, 2), 3))
    assert os.listdir(tmp_path) == ['a.png']
