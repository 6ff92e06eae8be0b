"""AtomicLocalBackend: registered with mmengine's file I/O as
``atomic_local``; a write that dies midway leaves the previous file."""
import os

import pytest
from mmengine.fileio import get_file_backend

import rca_mm.fileio.atomic as fileio
from rca_mm.fileio import AtomicLocalBackend


def test_backend_is_registered_and_put_is_atomic(tmp_path, monkeypatch):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    path = tmp_path / 'sub' / 'f.bin'
    backend.put(b'old', path)
    backend.put_text('new', path)
    assert path.read_bytes() == b'new'

    real_fdopen = os.fdopen

    def dies_midway(fd, mode):
        f = real_fdopen(fd, mode)
        real_write = f.write
        f.write = lambda data: (real_write(data[:1]), 1 / 0)
        return f

    monkeypatch.setattr(fileio.os, 'fdopen', dies_midway)
    with pytest.raises(ZeroDivisionError):
        backend.put(b'truncated', path)
    assert path.read_bytes() == b'new'
    assert os.listdir(path.parent) == ['f.bin']  # no temporary left
