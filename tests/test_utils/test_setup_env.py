import sys

import pytest
from mmengine.registry import DefaultScope

from rca_mm.utils import register_all_modules


@pytest.fixture(autouse=True)
def restore_default_scope():
    """Leave the process's current default scope as the test found it."""
    before = DefaultScope.get_current_instance()
    yield
    if before is not None:
        DefaultScope.get_instance(
            f'_restored_{id(before)}_{len(DefaultScope._instance_dict)}',
            scope_name=before.scope_name)


def test_register_all_modules_imports_packages_and_sets_scope():
    register_all_modules()
    for pkg in ('datasets', 'engine', 'evaluation', 'models',
                'visualization'):
        assert f'rca_mm.{pkg}' in sys.modules
    assert DefaultScope.get_current_instance().scope_name == 'rca_mm'


def test_register_all_modules_switches_from_another_scope():
    DefaultScope.get_instance('_probe_mmseg_scope', scope_name='mmseg')
    with pytest.warns(UserWarning, match='"mmseg" is not "rca_mm"'):
        register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'rca_mm'


def test_register_all_modules_can_leave_the_scope_alone():
    DefaultScope.get_instance('_probe_mmseg_scope_2', scope_name='mmseg')
    register_all_modules(init_default_scope=False)
    assert DefaultScope.get_current_instance().scope_name == 'mmseg'
