"""Does this torch build carry kernels for the CUDA device it runs on?

torch's wheels ship machine code (cubins, ``sm_XY``) for a list of compute
capabilities, sometimes plus PTX (``compute_XY``) that the driver compiles
at load time. ``torch.cuda.get_arch_list()`` names them. A device of
capability ``X.Z`` runs:

- a cubin ``sm_XY`` when the major versions match and ``Y <= Z`` (binary
  compatibility within a major version: ``sm_86`` runs on 8.9);
- an architecture-specific cubin ``sm_XYa`` on capability ``X.Y`` only;
- a family-specific cubin ``sm_XYf`` like a plain one (same major,
  ``Y <= Z``);
- PTX ``compute_XY`` when ``XY <= XZ`` as numbers (the driver JIT-compiles
  it for a newer device; slow first start, same results).

When none of them fits, every kernel launch fails with "no kernel image is
available for execution on the device". :func:`check_capability` says
whether a build fits, and names the ``TORCH_CUDA`` option of
``tools/install.sh`` whose build does, from PyTorch's published support
matrix (:data:`TORCH_CUDA_ARCHS`).

``python -m rca_mm.utils.cuda_check`` prints the device, its capability and
the verdict; it exits 1 when the build has no kernel for a visible device,
0 otherwise (also without a CUDA device). ``tools/install.sh`` and
``tools/gpu_check.sh`` run it.
"""
import argparse
import os
import re
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

# The architectures of PyTorch's Linux x86 wheels per CUDA build, as
# published for the 2.10 and 2.11 releases (PyTorch's GitHub discussion
# "Deprecate sm70 for CUDA 12.8 build"; RELEASE.md's support matrix), and
# what the PyPI wheel of torch 2.13.0 reports (cu130). Used only to suggest
# a build; the check itself reads the installed build's own list.
TORCH_CUDA_ARCHS: Dict[str, Tuple[str, ...]] = {
    'cu130': ('sm_75', 'sm_80', 'sm_86', 'sm_90', 'sm_100', 'sm_120'),
    'cu128': ('sm_75', 'sm_80', 'sm_86', 'sm_90', 'sm_100', 'sm_120'),
    'cu126': ('sm_50', 'sm_60', 'sm_70', 'sm_75', 'sm_80', 'sm_86', 'sm_90'),
}

_ARCH = re.compile(r'^(sm|compute)_(\d{2,3})([af]?)$')


class Arch(NamedTuple):
    """One entry of ``torch.cuda.get_arch_list()``."""
    kind: str  # 'sm' (cubin) or 'compute' (PTX)
    major: int
    minor: int
    suffix: str  # '', 'a' (architecture-specific) or 'f' (family)


class CapabilityCheck(NamedTuple):
    """The verdict of :func:`check_capability`.

    ``ok`` is whether a kernel image fits; ``kernel`` the arch entry that
    runs (a cubin preferred over PTX), None when none does; ``message`` a
    one-line explanation, with the fix when ``ok`` is False.
    """
    ok: bool
    kernel: Optional[str]
    message: str


def parse_arch(arch: str) -> Arch:
    """``'sm_86'`` -> ``Arch('sm', 8, 6, '')``; ``'compute_120'`` ->
    ``Arch('compute', 12, 0, '')``; ``'sm_90a'`` -> ``Arch('sm', 9, 0,
    'a')``.

    Raises:
        ValueError: for a string that is not such an entry.
    """
    match = _ARCH.match(arch.strip())
    if match is None:
        raise ValueError(f'{arch!r} is not a CUDA architecture such as '
                         "'sm_86' or 'compute_90'")
    number = int(match.group(2))
    return Arch(match.group(1), number // 10, number % 10, match.group(3))


def runs_on(arch: str, capability: Tuple[int, int]) -> bool:
    """Whether the code of ``arch`` runs on a device of ``capability``
    (``(major, minor)``), by the rules of the module docstring."""
    a = parse_arch(arch)
    major, minor = capability
    if a.kind == 'compute':  # PTX: JIT for the same or a newer device
        return (a.major, a.minor) <= (major, minor) and a.suffix == ''
    if a.suffix == 'a':
        return (a.major, a.minor) == (major, minor)
    return a.major == major and a.minor <= minor


def format_capability(capability: Tuple[int, int]) -> str:
    """``(7, 0)`` -> ``'7.0 (sm_70)'``."""
    return (f'{capability[0]}.{capability[1]} '
            f'(sm_{capability[0]}{capability[1]})')


def suggest_torch_cuda(capability: Tuple[int, int]) -> List[str]:
    """The ``TORCH_CUDA`` tags of :data:`TORCH_CUDA_ARCHS` whose builds
    run on ``capability``, newest CUDA first."""
    return [
        tag for tag, archs in TORCH_CUDA_ARCHS.items() if any(
            runs_on(a, capability) for a in archs)
    ]


def check_capability(arch_list: Sequence[str],
                     capability: Tuple[int, int],
                     device_name: str = 'the device') -> CapabilityCheck:
    """Whether a torch build with ``arch_list`` has a kernel image for a
    device of ``capability``.

    Args:
        arch_list (Sequence[str]): ``torch.cuda.get_arch_list()``.
        capability (tuple[int, int]): ``torch.cuda.get_device_capability()``.
        device_name (str): the device's name, for the message.
            Default: 'the device'.

    Returns:
        CapabilityCheck: the verdict, the fitting entry and a message that
        names the ``TORCH_CUDA`` option to choose when nothing fits.
    """
    arch_list = list(arch_list)
    if not arch_list:
        return CapabilityCheck(
            False, None, 'this torch has no CUDA kernels at all (a CPU '
            'build); reinstall with a CUDA build: ' + _fix(capability))
    fitting = [a for a in arch_list if runs_on(a, capability)]
    cubins = [a for a in fitting if a.startswith('sm_')]
    cap = format_capability(capability)
    if fitting:
        kernel = (cubins or fitting)[-1]
        how = 'machine code' if cubins else 'PTX, compiled by the driver'
        return CapabilityCheck(
            True, kernel, f'{device_name}, compute capability {cap}: '
            f'kernels from {kernel} ({how})')
    return CapabilityCheck(
        False, None, f'this torch has no kernel for {device_name}, compute '
        f'capability {cap} (it has {", ".join(arch_list)}); every CUDA op '
        'would fail with "no kernel image is available". ' + _fix(capability))


def _fix(capability: Tuple[int, int]) -> str:
    tags = suggest_torch_cuda(capability)
    if not tags:
        return ('No PyTorch build of the known CUDA tags '
                f'({", ".join(TORCH_CUDA_ARCHS)}) supports compute capability '
                f'{format_capability(capability)}; see docs/get_started.md, '
                '"Installing for GPUs".')
    alts = ''.join(f' (or TORCH_CUDA={t})' for t in tags[1:])
    return (f'Fix: TORCH_CUDA={tags[0]} bash tools/install.sh{alts}; '
            'docs/get_started.md, "Installing for GPUs", lists the builds.')


def describe_devices() -> Tuple[bool, List[str]]:
    """Check every visible CUDA device against the installed torch.

    Returns:
        tuple[bool, list[str]]: whether all devices have kernels (True
        without a device), and the lines to print.
    """
    import torch
    lines = [
        f'torch {torch.__version__}, CUDA build '
        f'{torch.version.cuda or "none (CPU build)"}'
    ]
    if not torch.cuda.is_available():
        lines.append('no CUDA device')
        return True, lines
    arch_list = torch.cuda.get_arch_list()
    lines.append(f'kernels for: {", ".join(arch_list) or "none"}')
    ok = True
    for index in range(torch.cuda.device_count()):
        name = torch.cuda.get_device_name(index)
        result = check_capability(arch_list,
                                  torch.cuda.get_device_capability(index),
                                  f'cuda:{index} {name}')
        ok &= result.ok
        lines.append(('ok: ' if result.ok else 'UNSUPPORTED: ') +
                     result.message)
    return ok, lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Print the CUDA devices and whether this torch build '
        'has kernels for them; exit 1 when it has not.')
    parser.parse_args(argv)
    ok, lines = describe_devices()
    option = os.environ.get('TORCH_CUDA')
    if option:
        lines.insert(1, f'installed with TORCH_CUDA={option}')
    print('\n'.join(lines))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
