"""Train a model from a config: what ``tools/train.py`` does after parsing
its command line.

.. code:: text

    load_config               --cfg-options checked, work_dir, launcher,
                              the total batch kept (or the lr scaled)
    amp                       AmpOptimWrapper with a dynamic loss scale
    lock_dir(work_dir)        one run per work dir
    build_runner -> runner.train()
"""
import logging
from typing import Optional

from mmengine.logging import print_log

from rca_mm.engine.runner_builder import build_runner, load_config
from rca_mm.utils.dist_utils import finish_distributed
from rca_mm.utils.workdir_lock import lock_dir


def run_train(config: str,
              *,
              work_dir: Optional[str] = None,
              resume: bool = False,
              amp: bool = False,
              auto_scale_lr: bool = False,
              cfg_options: Optional[dict] = None,
              launcher: str = 'none',
              experiment_name: Optional[str] = None) -> str:
    """Train a model, as ``tools/train.py`` does.

    Args:
        config (str): the config file.
        work_dir (str, optional): where logs and checkpoints go (default:
            the config's ``work_dir``, else ``./work_dirs/<config name>``).
        resume (bool): resume from the latest checkpoint in the work dir.
            Default: False.
        amp (bool): automatic-mixed-precision training. Default: False.
        auto_scale_lr (bool): keep the per-process batch on any number of
            processes and scale the learning rate to the total batch;
            otherwise the per-process batch keeps the config's total.
            Default: False.
        cfg_options (dict, optional): ``--cfg-options``. Default: None.
        launcher (str): the job launcher. Default: ``'none'``.
        experiment_name (str, optional): the Runner's experiment name,
            which keys its logger; give each run in one process its own.
            Default: the config's, else the config name and a timestamp.

    Returns:
        str: the work dir the run wrote to.
    """
    # load config: Config.fromfile, --cfg-options (checked), launcher;
    # work_dir is determined in this priority: CLI > config > file name;
    # the total batch is the config's on any number of processes, or the
    # learning rate is scaled to it (--auto-scale-lr)
    cfg = load_config(
        config,
        cfg_options,
        work_dir,
        launcher,
        training=True,
        auto_scale_lr=auto_scale_lr)
    if experiment_name is not None:
        cfg.experiment_name = experiment_name

    # enable automatic-mixed-precision training
    if amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    # resume training
    cfg.resume = resume

    # one run per work dir: a second one would overwrite its checkpoints
    with lock_dir(cfg.work_dir, cfg.launcher, what='work dir (--work-dir)'):
        runner = build_runner(cfg)
        runner.train()
        finish_distributed()
    return cfg.work_dir
