"""Every script under ``tools/`` imports cleanly.

A renamed helper in ``rca_mm`` breaks a script only when that script runs;
most scripts are run by hand or by a slow test, so this import check is
what catches a stale ``from rca_mm... import name`` first.
"""
import glob
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPTS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True))


def test_the_tool_scripts_were_found():
    assert 'tools/train.py' in SCRIPTS and 'tools/test.py' in SCRIPTS
    assert any(s.startswith('tools/analysis_tools/') for s in SCRIPTS)


@pytest.mark.parametrize('script', SCRIPTS)
def test_tool_script_imports(script):
    name = 'tool_' + script.replace('/', '_')[:-3]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(
        module, 'main',
        None)) or script.endswith('__init__.py'), f'{script} has no main()'


@pytest.mark.parametrize('script', SCRIPTS)
def test_tool_script_leaves_sys_path_alone(script):
    """Tools import the installed rca_mm (``pip install -e .``, as
    tools/install.sh does); none puts the repository on ``sys.path``."""
    with open(osp.join(REPO, script)) as f:
        source = f.read()
    assert 'sys.path' not in source, (
        f'{script} edits sys.path; import the installed rca_mm instead')
