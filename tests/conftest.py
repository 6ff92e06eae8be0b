import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch

from rca_mm.testing.voc_layout import write_voc_layout

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# --cfg-options that load every split in the test process itself (no
# worker processes): cheaper for tiny data, and deterministic.
SERIAL_LOADERS = [
    f'{loader}.{key}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False')
]


def pytest_addoption(parser):
    parser.addoption(
        '--device',
        default='cpu',
        help='torch device of the tests that take the `device` fixture '
        '(the model, loss and bank tests): cpu (default) or cuda, cuda:1')


@pytest.fixture(scope='session')
def device(request) -> torch.device:
    """The device given by ``pytest --device`` (default cpu). A test that
    takes it builds its modules and tensors there; with ``--device cuda``
    on a machine without CUDA those tests are skipped, saying why."""
    name = request.config.getoption('--device')
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise pytest.UsageError(f'pytest --device {name!r}: {exc}') from exc
    if dev.type == 'cuda' and not torch.cuda.is_available():
        pytest.skip(f'pytest --device {name}: no CUDA device is available '
                    '(torch.cuda.is_available() is False)')
    return dev


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory):
    """A tiny VOC-layout dataset shared by the tests of one session."""
    return write_voc_layout(
        str(tmp_path_factory.mktemp('data') / 'VOC2012'),
        num_train=16,
        num_val=4,
        seed=0)


def free_port() -> int:
    """A port free now; another process may take it before it is bound
    (use :func:`run_dist_tool` for launcher runs, which retries)."""
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


# torch's store, when the port went to another process in between.
_BIND_ERROR = re.compile(r'EADDRINUSE|[Aa]ddress already in use')


def run_dist_tool(args, env=None, attempts=3, **kwargs):
    """:func:`run_tool` for ``tools/dist_*.sh``: ``PORT`` is a free port,
    and a run that fails because another process bound that port first
    is started again on a new one."""
    check = kwargs.pop('check', True)
    for attempt in range(attempts):
        code, log = run_tool(
            args, env=dict(env or {}, PORT=str(free_port())), check=False,
            **kwargs)
        if code == 0 or not _BIND_ERROR.search(log) or \
                attempt == attempts - 1:
            break
    if not check:
        return code, log
    if code != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited {code}:\n'
                    f'{log[-6000:]}')
    return log
