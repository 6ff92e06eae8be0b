import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from rca_mm.testing.voc_layout import write_voc_layout

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory):
    """A tiny VOC-layout dataset shared by the tests of one session."""
    return write_voc_layout(
        str(tmp_path_factory.mktemp('data') / 'VOC2012'),
        num_train=16,
        num_val=4,
        seed=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(args, timeout=600, env=None, check=True, **kwargs):
    """Run a command from the repository root with this interpreter.

    ``python`` in ``args`` stands for ``sys.executable``. With ``check``, fails
    the test with the command's output when it exits non-zero; without, returns
    ``(returncode, output)``.
    """
    args = [sys.executable if a == 'python' else str(a) for a in args]
    full_env = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    proc = subprocess.run(
        args,
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        **kwargs)
    if not check:
        return proc.returncode, proc.stdout
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n'
                    f'{proc.stdout[-6000:]}')
    return proc.stdout
