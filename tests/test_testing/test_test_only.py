"""``rca_mm.testing`` serves the tests only: no production module or tool
imports it."""
import ast
import os
import os.path as osp

from ..conftest import REPO


def _imported_modules(path: str):
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module or ''
            yield from (f'{node.module}.{alias.name}' for alias in node.names)


def test_no_production_module_imports_rca_mm_testing():
    testing = osp.join('rca_mm', 'testing')
    offenders, checked = [], 0
    for top in ('rca_mm', 'tools'):
        for root, _, files in os.walk(osp.join(REPO, top)):
            rel_root = osp.relpath(root, REPO)
            if rel_root == testing or rel_root.startswith(testing + os.sep):
                continue
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = osp.join(root, name)
                checked += 1
                if any(module == 'rca_mm.testing'
                       or module.startswith('rca_mm.testing.')
                       for module in _imported_modules(path)):
                    offenders.append(osp.relpath(path, REPO))
    assert checked > 50
    assert offenders == []
