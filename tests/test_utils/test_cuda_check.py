import subprocess
import sys

import pytest
import torch

from rca_mm.utils.cuda_check import (TORCH_CUDA_ARCHS, Arch, check_capability,
                                     parse_arch, runs_on, suggest_torch_cuda)
from tests.conftest import REPO

# What the PyPI wheel of torch 2.13.0 (CUDA 13.0) reports.
CU130 = ['sm_75', 'sm_80', 'sm_86', 'sm_90', 'sm_100', 'sm_120']
CU126 = list(TORCH_CUDA_ARCHS['cu126'])


def test_parse_arch():
    assert parse_arch('sm_86') == Arch('sm', 8, 6, '')
    assert parse_arch('sm_100') == Arch('sm', 10, 0, '')
    assert parse_arch('compute_120') == Arch('compute', 12, 0, '')
    assert parse_arch('sm_90a') == Arch('sm', 9, 0, 'a')
    assert parse_arch('sm_100f') == Arch('sm', 10, 0, 'f')
    for bad in ('sm86', 'gfx90a', 'sm_8', ''):
        with pytest.raises(ValueError, match='CUDA architecture'):
            parse_arch(bad)


@pytest.mark.parametrize(
    'arch, capability, expected',
    [
        ('sm_70', (7, 0), True),
        ('sm_75', (7, 0), False),  # a newer cubin never runs on older
        ('sm_86', (8, 9), True),  # same major, lower minor (L4, RTX 4090)
        ('sm_86', (8, 0), False),  # same major, higher minor (A100)
        ('sm_80', (9, 0), False),  # cubins do not cross a major version
        ('sm_100', (10, 3), True),
        ('sm_120', (12, 1), True),
        ('sm_90a', (9, 0), True),
        ('sm_90a', (9, 1), False),  # architecture-specific: exactly 9.0
        ('sm_100f', (10, 3), True),  # family-specific: 10.x, x >= 0
        ('compute_80', (9, 0), True),  # PTX: JIT for newer devices
        ('compute_80', (8, 6), True),
        ('compute_120', (11, 0), False),  # PTX never for an older device
        ('compute_90', (9, 0), True),
    ])
def test_runs_on(arch, capability, expected):
    assert runs_on(arch, capability) is expected


def test_v100_on_the_default_cuda13_build_names_the_fix():
    result = check_capability(CU130, (7, 0), 'Tesla V100-SXM2-32GB')
    assert not result.ok and result.kernel is None
    assert 'Tesla V100-SXM2-32GB' in result.message
    assert '7.0 (sm_70)' in result.message
    assert 'sm_75, sm_80' in result.message  # what the build has
    assert 'TORCH_CUDA=cu126 bash tools/install.sh' in result.message


def test_supported_cards():
    # H100 on the default build: its own cubin.
    assert check_capability(CU130,
                            (9, 0)) == (True, 'sm_90',
                                        check_capability(CU130,
                                                         (9, 0)).message)
    # L4 (8.9): the sm_86 cubin, by binary compatibility.
    result = check_capability(CU130, (8, 9), 'NVIDIA L4')
    assert result.ok and result.kernel == 'sm_86'
    assert 'machine code' in result.message
    # V100 on the CUDA 12.6 build.
    assert check_capability(CU126, (7, 0)).kernel == 'sm_70'
    # Blackwell B200 (10.0) on the CUDA 12.6 build: nothing fits.
    result = check_capability(CU126, (10, 0))
    assert not result.ok
    assert 'TORCH_CUDA=cu130 bash tools/install.sh (or TORCH_CUDA=cu128)' \
        in result.message


def test_ptx_only_fallback_is_accepted_and_said():
    result = check_capability(['sm_80', 'compute_80'], (9, 0), 'H100')
    assert result.ok and result.kernel == 'compute_80'
    assert 'PTX' in result.message
    # A cubin is preferred over PTX when both fit.
    assert check_capability(['sm_90', 'compute_90'], (9, 0)).kernel == 'sm_90'


def test_cpu_build_and_too_old_cards():
    result = check_capability([], (8, 0))
    assert not result.ok and 'CPU build' in result.message
    assert 'TORCH_CUDA=cu130' in result.message
    # Kepler (3.7, K80): no published build of these tags runs it.
    assert suggest_torch_cuda((3, 7)) == []
    result = check_capability(CU130, (3, 7), 'Tesla K80')
    assert not result.ok and 'No PyTorch build' in result.message
    assert suggest_torch_cuda((7, 0)) == ['cu126']
    assert suggest_torch_cuda((8, 0)) == ['cu130', 'cu128', 'cu126']


def test_command_line_without_a_device_says_so():
    """The script run by install.sh: on this machine it prints the torch
    build and 'no CUDA device' (or checks the GPU when there is one)."""
    proc = subprocess.run([sys.executable, 'rca_mm/utils/cuda_check.py'],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=120,
                          env={
                              'CUDA_VISIBLE_DEVICES': '',
                              'PATH': '/usr/bin:/bin'
                          })
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f'torch {torch.__version__}')
    assert 'no CUDA device' in proc.stdout
