"""From a config file to the Runner of ``tools/train.py`` and
``tools/test.py``, as mmsegmentation's tools build it."""
import argparse
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from rca_mm.engine.hooks.num_classes_check_hook import NumClassesCheckHook
from rca_mm.registry import RUNNERS
from rca_mm.utils.dist_utils import init_cpu_distributed
from rca_mm.utils.setup_env import pin_sampler_seeds
from .config_checks import (check_cfg_options, check_checkpoint_fits,
                            resolve_train_batch_size, world_size_of)


def add_cfg_options_arg(parser: argparse.ArgumentParser) -> None:
    """mmseg's ``--cfg-options`` (``key=value`` pairs merged into the
    config; :func:`load_config` refuses a key the config does not have)."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed. A key the config does not have is refused.')


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The options that ``tools/train.py`` and ``tools/test.py`` share, as
    mmseg's have them: ``--cfg-options``, ``--launcher`` and the
    ``--local-rank`` that ``torch.distributed.launch`` passes."""
    add_cfg_options_arg(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes `--local-rank` (torch >= 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line; ``--local-rank`` goes to ``LOCAL_RANK``.

    ``LOCAL_RANK`` keeps its value when the launcher set it. The returned
    namespace no longer holds ``local_rank``: its fields are the keyword
    arguments of the run (:func:`rca_mm.apis.run_train`,
    :func:`rca_mm.apis.run_test`).
    """
    args = parser.parse_args()
    local_rank = args.__dict__.pop('local_rank')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
    return args


def load_config(filename: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none',
                *,
                training: bool = False,
                auto_scale_lr: bool = False) -> Config:
    """Load a config as mmseg's tools do, refusing unknown option keys.

    .. code:: text

        Config.fromfile(filename)
        cfg.launcher = launcher
        check_cfg_options          every key of --cfg-options exists (or may
                                   be added), of the config's kind of value
        cfg.merge_from_dict(cfg_options)
        cfg.work_dir               --work-dir, else the config's, else
                                   ./work_dirs/<config file name>
        resolve_train_batch_size   with training: the config's total batch
                                   (auto_scale_lr.base_batch_size) on this
                                   number of processes, or the learning
                                   rate scaled (--auto-scale-lr), or refused;
                                   otherwise env_cfg.cudnn_benchmark off

    Args:
        filename (str): the config file.
        cfg_options (dict, optional): ``--cfg-options``. Default: None.
        work_dir (str, optional): ``--work-dir``. Default: None.
        launcher (str): ``--launcher``. Default: ``'none'``.
        training (bool): a training run: fit the per-process batch to the
            number of processes (``resolve_train_batch_size``).
            Default: False.
        auto_scale_lr (bool): ``--auto-scale-lr``, with ``training``.
            Default: False.

    Returns:
        Config: the config to build the Runner from.
    """
    cfg = Config.fromfile(filename)
    cfg.launcher = launcher
    if cfg_options is not None:
        check_cfg_options(cfg, cfg_options, filename)
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(filename))[0])
    if training:
        resolve_train_batch_size(
            cfg,
            world_size_of(launcher),
            auto_scale_lr=auto_scale_lr,
            batch_size_given='train_dataloader.batch_size' in (cfg_options
                                                               or {}),
            config=filename)
    elif cfg.get('env_cfg', {}).get('cudnn_benchmark'):
        # Testing sees a new input shape with every image and scale:
        # cuDNN's benchmark would search algorithms for each of them.
        cfg.env_cfg.cudnn_benchmark = False
    return cfg


def pin_memory_only_with_accelerator(cfg: Config) -> None:
    """Turn the dataloaders' ``pin_memory`` off where there is no
    accelerator to pin for, in place.

    The paper configs pin their training batches (copies to the GPU
    overlap the step); without an accelerator torch would warn each time
    a loader starts its iterator and pin nothing.
    """
    accelerator = getattr(torch, 'accelerator', None)
    available = accelerator.is_available() if accelerator is not None \
        else torch.cuda.is_available()
    if available:
        return
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and loader.get('pin_memory'):
            loader['pin_memory'] = False


def build_runner(cfg: Config, check_load_from: bool = False) -> Runner:
    """Build the Runner as mmseg's tools do, with rca_mm's checks.

    .. code:: text

        init_cpu_distributed     gloo first for a distributed run on a
                                 machine without CUDA
        pin_sampler_seeds        the samplers keep randomness.seed under
                                 diff_rank_seed
        pin_memory_only_with_accelerator
                                 the loaders' pin_memory off without one
        Runner.from_cfg(cfg)     or RUNNERS.build(cfg) with cfg.runner_type
        NumClassesCheckHook      the model's class count against the
                                 dataset's, before the first step
        check_checkpoint_fits    with check_load_from: cfg.load_from must
                                 hold the model's weights

    Args:
        cfg (Config): the run's config, ``launcher`` and ``work_dir`` set.
        check_load_from (bool): refuse a ``cfg.load_from`` checkpoint whose
            weights do not match the model, as for testing. Default: False
            (training may load partially).

    Returns:
        Runner: the built runner.
    """
    if cfg.launcher != 'none':
        init_cpu_distributed(cfg)
    pin_sampler_seeds(cfg)
    pin_memory_only_with_accelerator(cfg)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.register_hook(NumClassesCheckHook())
    if check_load_from and cfg.get('load_from'):
        check_checkpoint_fits(runner.model, cfg.load_from)
    return runner
