"""The tree is lint-clean: flake8, isort and yapf with setup.cfg's settings.

The files checked are every Python file of the repository (``rca_mm``,
``tools``, ``tests``, ``configs``, ``demo``, ``setup.py``). To fix what a
failure lists::

    .venv/bin/isort rca_mm tools tests configs demo setup.py
    .venv/bin/yapf -i -r -p rca_mm tools tests configs demo setup.py
    .venv/bin/flake8 rca_mm tools tests configs demo setup.py
"""
import glob
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TREES = ('rca_mm', 'tools', 'tests', 'configs', 'demo')


def python_files():
    files = [osp.join(ROOT, 'setup.py')]
    for tree in TREES:
        files += glob.glob(osp.join(ROOT, tree, '**', '*.py'), recursive=True)
    return sorted(files)


def test_python_files_found():
    files = python_files()
    assert len(files) > 300
    assert osp.join(ROOT, 'rca_mm', 'registry.py') in files


@pytest.mark.parametrize(
    'command', [
        ['flake8'],
        ['isort', '--check-only', '--diff'],
        ['yapf', '--diff', '--parallel'],
    ],
    ids=['flake8', 'isort', 'yapf'])
def test_lint(command):
    result = subprocess.run(
        [sys.executable, '-m'] + command + python_files(),
        cwd=ROOT,
        capture_output=True,
        text=True)
    report = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f'{command[0]} found:\n{report}'
