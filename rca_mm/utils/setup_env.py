"""Register rca_mm's modules and make ``rca_mm`` the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every rca_mm module package so that its classes register.

    Configs do not need this (the registries' ``locations`` import packages on
    first use); scripts and notebooks that build modules outside a Runner do.

    Args:
        init_default_scope (bool): make ``rca_mm`` the current default scope,
            as the Runner does for ``default_scope = 'rca_mm'``.
            Default: True.
    """
    import rca_mm.datasets  # noqa: F401,F403
    import rca_mm.engine  # noqa: F401,F403
    import rca_mm.evaluation  # noqa: F401,F403
    import rca_mm.models  # noqa: F401,F403
    import rca_mm.visualization  # noqa: F401,F403

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('rca_mm'):
        DefaultScope.get_instance('rca_mm', scope_name='rca_mm')
    elif current.scope_name != 'rca_mm':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "rca_mm"; `register_all_modules` makes a new '
                      'default scope named "rca_mm" current.')
        DefaultScope.get_instance(
            f'rca_mm-{datetime.datetime.now()}', scope_name='rca_mm')
