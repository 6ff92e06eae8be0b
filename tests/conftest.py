import logging
import os
import os.path as osp
import re
import signal
import socket
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.logging import MMLogger

from rca_mm.datasets.synthetic import generate_synthvoc
from rca_mm.testing.voc_layout import write_voc_layout

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# --cfg-options that load every split in the test process itself (no
# worker processes): cheaper for tiny data, and deterministic.
SERIAL_LOADERS = [
    f'{loader}.{key}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False')
]

# The environment of the runs whose numbers are pinned (the golden runs,
# the RCA config reference): every kernel library on AVX2 and one thread,
# so that the floats are summed in one order on any x86-64 CPU with AVX2
# (docs/reliability.md, "Golden runs").
PINNED_KERNELS = dict(
    ATEN_CPU_CAPABILITY='avx2',
    ONEDNN_MAX_CPU_ISA='AVX2',
    MKL_ENABLE_INSTRUCTIONS='AVX2',
    OMP_NUM_THREADS='1',
    MKL_NUM_THREADS='1',
    OPENBLAS_NUM_THREADS='1')


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


@pytest.fixture
def log_messages():
    """Messages logged through mmengine's current logger in the test:
    a function that returns them joined by newlines."""
    logger = MMLogger.get_instance(f'test_{uuid.uuid4().hex}')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    yield lambda: '\n'.join(r.getMessage() for r in records)
    logger.removeHandler(handler)


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory):
    """A tiny VOC-layout dataset shared by the tests of one session."""
    return write_voc_layout(
        str(tmp_path_factory.mktemp('data') / 'VOC2012'),
        num_train=16,
        num_val=4,
        seed=0)


def small_synthvoc(root, **options) -> str:
    """Write a SynthVOC for a tool run at ``root`` and return its path.

    Two validation images of 64x64 and no progress bar unless ``options``
    say otherwise; ``options`` go to :func:`generate_synthvoc` (its
    ``num_train`` and ``num_train_subset`` at least).
    """
    settings = dict(num_val=2, size=(64, 64), show_progress=False)
    settings.update(options)
    generate_synthvoc(str(root), **settings)
    return str(root)


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

    The command runs in a process group of its own. When it outlives
    ``timeout`` seconds, or the test is interrupted while it runs (Ctrl-C,
    pytest-timeout), the whole group is killed: the processes a launcher
    started (torchrun's workers, a pipeline's steps) with it. A command past
    ``timeout`` fails the test with its output so far.
    """
    args = [sys.executable if a == 'python' else str(a) for a in args]
    full_env = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        output, _ = proc.communicate()
        pytest.fail(f'{" ".join(args)} ran past its {timeout} s and was '
                    f'killed with its process group:\n{output[-6000:]}')
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    finally:
        # A launcher that exited leaves no worker behind either.
        _kill_group(proc)
    if not check:
        return proc.returncode, output
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n'
                    f'{output[-6000:]}')
    return output


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group that ``proc`` leads (started with
    ``start_new_session=True``), if any process of it is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait()


# torch's store, when the port went to another process in between.
_BIND_ERROR = re.compile(r'EADDRINUSE|[Aa]ddress already in use')


def run_dist_tool(args, env=None, attempts=3, **kwargs):
    """:func:`run_tool` for ``tools/dist_*.sh``: ``PORT`` is a free port,
    and a run that fails because another process bound that port first
    is started again on a new one."""
    check = kwargs.pop('check', True)
    for attempt in range(attempts):
        code, log = run_tool(
            args,
            env=dict(env or {}, PORT=str(free_port())),
            check=False,
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
