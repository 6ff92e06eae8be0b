"""Register rca_mm's modules and make ``rca_mm`` the default scope; keep
the samplers' seed under per-rank seeding."""
import datetime
import warnings

from mmengine import DefaultScope
from mmengine.config import Config

_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


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


def pin_sampler_seeds(cfg: Config) -> None:
    """Give every dataloader's sampler the run's seed under
    ``randomness.diff_rank_seed``.

    With ``diff_rank_seed=True``, mmengine (0.10.7) seeds the generators of
    rank r with ``seed + r`` (rank 0 keeps ``seed``), and also builds every
    sampler with ``seed=None``; the sampler then draws its seed from
    numpy's generator (``sync_random_seed``, rank 0's value broadcast).
    That changes the shuffling order and moves numpy's stream by one draw
    per dataloader, also on a single process. Setting the sampler's seed to
    ``randomness.seed`` keeps both as with ``diff_rank_seed=False``: the
    same order on every rank (the shards stay disjoint) and single-process
    runs unchanged, while each rank draws its own dropout masks, mixup
    partners and augmentations.

    A sampler that already has a ``seed`` keeps it; nothing changes when
    ``randomness.seed`` is None (the sampler's seed is then random and
    broadcast) or ``diff_rank_seed`` is off.

    Args:
        cfg (Config): the run's config, changed in place.
    """
    randomness = cfg.get('randomness') or {}
    seed = randomness.get('seed')
    if seed is None or not randomness.get('diff_rank_seed', False):
        return
    for key in _LOADERS:
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        sampler = loader.get('sampler')
        if isinstance(sampler, dict):
            sampler.setdefault('seed', seed)
