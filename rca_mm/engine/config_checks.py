"""Early checks of a run's config, before anything is built or loaded:
``--cfg-options`` keys and values, ``load_from`` against the model, and the
training batch against the number of processes."""
import difflib
import inspect
import logging
import os
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional

import torch.distributed as dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader

import rca_mm.registry as registries
from rca_mm.utils.safe_checkpoint import safe_torch_load

# Top-level keys a --cfg-options may add: what Runner.from_cfg reads.
_RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) | {
    'launcher', 'runner_type', 'model_wrapper_cfg', 'work_dir',
    'find_unused_parameters', 'tta_model', 'tta_pipeline'
}
# Read by mmengine's optimizer wrapper constructor, not the wrapper.
_OPTIM_WRAPPER_KEYS = frozenset({'constructor', 'paramwise_cfg'})
# What mmengine's Runner.build_dataloader passes on to DataLoader.
_DATALOADER_KEYS = frozenset(
    inspect.signature(DataLoader.__init__).parameters) | {
        'sampler', 'batch_sampler', 'collate_fn', 'dataset', 'worker_init_fn'
    }


def _type_params(type_: Any) -> Optional[Dict[str, Any]]:
    """The constructor arguments of the class a config ``type`` names, with
    their defaults (``inspect.Parameter.empty`` for none); None when no
    rca_mm registry resolves it or it takes ``**kwargs``."""
    found = []
    if isinstance(type_, str):
        for reg in vars(registries).values():
            if isinstance(reg, type(registries.MODELS)):
                try:
                    obj = reg.get(type_)
                except Exception:  # a scope's package is not installed
                    obj = None
                if obj is not None:
                    found.append(obj)
    elif callable(type_):
        found.append(type_)
    params: Dict[str, Any] = {}
    for obj in found:
        try:
            signature = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind == p.VAR_KEYWORD for p in signature):
            return None
        params.update((p.name, p.default) for p in signature)
    return params if found else None


def _check_value_type(option: str,
                      old: Any,
                      new: Any,
                      config: str,
                      what: str = 'the config\'s value') -> None:
    """Refuse a ``--cfg-options`` value of another kind than ``old``: text
    or a container for a number or a flag, a flag for a number, or a
    single value for a dict. None, either way, is always accepted."""
    if old is None or new is None or old is inspect.Parameter.empty:
        return
    number, flag = (int, float), bool
    wrong = (
        isinstance(old,
                   (number, flag)) and isinstance(new,
                                                  (str, list, tuple, dict))
        or isinstance(old, number) and not isinstance(old, flag)
        and isinstance(new, flag)
        or isinstance(old, dict) and isinstance(new, (str, number, flag)))
    if wrong:
        raise TypeError(
            f'--cfg-options {option}={new!r}: {what} is {old!r} '
            f'({type(old).__name__}), this is a {type(new).__name__} '
            f'(config {config}). Give a value of the same kind')


def _refuse(option: str, key: str, where: str, candidates: Iterable[str],
            config: str) -> None:
    close = difflib.get_close_matches(key, sorted(set(candidates)), n=3)
    hint = f'; did you mean {" or ".join(repr(c) for c in close)}?' \
        if close else ''
    raise KeyError(
        f'--cfg-options {option}: {where} has no key {key!r}{hint} '
        f'(config {config}). mmengine would silently add it; check the '
        'spelling, or see docs/reliability.md for which keys may be added')


def check_cfg_options(cfg: Config, options: dict, config: str = '') -> None:
    """Refuse ``--cfg-options`` keys that do not exist in ``cfg``.

    mmengine's ``merge_from_dict`` adds any key it is given, so a misspelt
    key is silently ignored by the run. A key path is accepted when every
    key on it exists (list indices included), and a missing key only where
    adding one is legitimate:

    - at the top level, a key the Runner reads (``randomness``,
      ``resume``, ...);
    - in a dict with a ``type``, a constructor argument of that class (or
      any key when the class takes ``**kwargs`` or no rca_mm registry
      resolves it), e.g. ``model.head.gate_threshold=0.5``;
    - in a ``*_dataloader`` dict, a ``DataLoader`` argument;
    - in any other dict (free-form, e.g. ``model.test_cfg``), any key;
    - below a key that is itself added, anything.

    A value must be of the kind of the one it replaces (or of the
    constructor's default for an added argument): text, a list or a dict
    for a number or a flag (``train_cfg.max_epochs=abc``), a flag for a
    number, or a single value for a dict are refused. None is accepted
    anywhere.

    Args:
        cfg (Config): the config before the options are merged.
        options (dict): ``{'a.b.c': value}`` from ``--cfg-options``.
        config (str): the config's file name, for the message.

    Raises:
        KeyError: a refused key, named with the close matches in its dict.
        IndexError: a list index out of range.
        TypeError: a value of another kind than the config's, naming the
            key.
    """
    for option, value in options.items():
        node: Any = cfg._cfg_dict
        parts: List[str] = option.split('.')
        for depth, key in enumerate(parts):
            where = '.'.join(parts[:depth]) or 'the config'
            if isinstance(node, (list, tuple)):
                if not key.isdigit() or int(key) >= len(node):
                    raise IndexError(
                        f'--cfg-options {option}: {where} is a list of '
                        f'{len(node)}; {key!r} is not an index of it '
                        f'(config {config})')
                node = node[int(key)]
                continue
            if not isinstance(node, (dict, ConfigDict)) or key in node:
                if not isinstance(node, (dict, ConfigDict)):
                    break  # below a value being replaced
                node = node[key]
                continue
            if depth == 0:
                if key not in _RUNNER_KEYS:
                    _refuse(option, key, where,
                            list(node) + list(_RUNNER_KEYS), config)
            elif 'type' in node:
                params = _type_params(node['type'])
                if params is not None and key not in params and not (
                        parts[0] == 'optim_wrapper' and depth == 1
                        and key in _OPTIM_WRAPPER_KEYS):
                    _refuse(option, key, f'{where} ({node["type"]})',
                            list(node) + list(params), config)
                if params is not None and key in params and \
                        depth == len(parts) - 1:
                    _check_value_type(
                        option, params[key], value, config,
                        f'the default of {node["type"]}({key}=...)')
            elif parts[depth - 1].endswith('_dataloader') and depth == 1:
                if key not in _DATALOADER_KEYS:
                    _refuse(option, key, where,
                            list(node) + list(_DATALOADER_KEYS), config)
            break
        else:
            _check_value_type(option, node, value, config)


def check_checkpoint_fits(model: nn.Module, filename: str) -> dict:
    """Load a checkpoint strictly into ``model``, refusing one whose weights
    are not those of the model.

    mmengine loads ``load_from`` non-strictly: missing, unexpected and
    mis-shaped weights only give a warning, and the test then scores a
    partly random model. This loads the checkpoint strictly into ``model``
    (the Runner loads it again later; the weights are the same).

    Args:
        model (nn.Module): the built model (a wrapper's ``module`` is used).
        filename (str): the checkpoint (an mmengine checkpoint or a bare
            state dict).

    Returns:
        dict: the loaded checkpoint.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no state dict, or the keys that are
            missing, unexpected or mis-shaped.
    """
    model = getattr(model, 'module', model)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    checkpoint = safe_torch_load(filename, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'checkpoint {filename!r} holds a '
                         f'{type(checkpoint).__name__}, not a state dict')
    state = checkpoint.get('state_dict', checkpoint)
    state = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state.items()
    }
    try:
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f'checkpoint {filename!r} does not fit the model '
            f'{type(model).__name__} of the config: {err}') from None
    problems = []
    for name, keys in (('missing', result.missing_keys),
                       ('unexpected', result.unexpected_keys)):
        if keys:
            shown = ', '.join(keys[:8]) + (f' (+{len(keys) - 8} more)'
                                           if len(keys) > 8 else '')
            problems.append(f'{len(keys)} {name} keys: {shown}')
    if problems:
        raise ValueError(
            f'checkpoint {filename!r} does not fit the model '
            f'{type(model).__name__} of the config ({"; ".join(problems)}). '
            'Was it trained with another config?')
    return checkpoint


def world_size_of(launcher: str) -> int:
    """The number of training processes a launcher starts, read before the
    Runner initialises the process group.

    An initialised group answers itself; otherwise the launcher's
    environment does: ``WORLD_SIZE`` (torchrun, ``pytorch``),
    ``SLURM_NTASKS`` (``slurm``), ``OMPI_COMM_WORLD_SIZE`` (``mpi``).

    Args:
        launcher (str): ``--launcher``: ``'none'``, ``'pytorch'``,
            ``'slurm'`` or ``'mpi'``.

    Returns:
        int: the world size, 1 for ``'none'``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    variable = {
        'pytorch': 'WORLD_SIZE',
        'slurm': 'SLURM_NTASKS',
        'mpi': 'OMPI_COMM_WORLD_SIZE'
    }.get(launcher)
    if variable is None:
        return 1
    value = os.environ.get(variable, '1')
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f'--launcher {launcher}: the environment variable {variable}='
            f'{value!r} is not a number of processes')
    return int(value)


def resolve_train_batch_size(cfg: Config,
                             world_size: int,
                             *,
                             auto_scale_lr: bool = False,
                             batch_size_given: bool = False,
                             config: str = '') -> str:
    """Make the total training batch the config's recipe on any number of
    processes, or scale the learning rate to it, or refuse.

    ``train_dataloader.batch_size`` is per process (mmengine), so the total
    batch is ``batch_size x world_size``; the recipe's total is
    ``auto_scale_lr.base_batch_size`` (mmengine's key, which every rca_mm
    config sets). Decided in this order:

    - ``auto_scale_lr.enable`` (``--auto-scale-lr``): the per-process batch
      stays, and mmengine's Runner scales the learning rate linearly by
      ``batch_size x world_size / base_batch_size``;
    - ``train_dataloader.batch_size`` given on the command line
      (``batch_size_given``): it is kept, at the config's learning rate
      (a warning when the total differs from the recipe's);
    - the config's batch already gives the recipe's total: nothing changes;
    - the recipe's total divides among the processes: the per-process
      batch becomes ``base_batch_size // world_size``, same learning rate;
    - otherwise the run is refused, naming the keys to set.

    A config without ``auto_scale_lr.base_batch_size`` keeps its
    per-process batch (a warning on more than one process).

    Args:
        cfg (Config): the training config, options merged; its
            ``train_dataloader.batch_size`` is set in place.
        world_size (int): the number of training processes.
        auto_scale_lr (bool): ``--auto-scale-lr``: switch mmengine's linear
            learning-rate scaling on. Default: False.
        batch_size_given (bool): ``train_dataloader.batch_size`` came from
            ``--cfg-options``. Default: False.
        config (str): the config's file name, for the messages.

    Returns:
        str: what was decided, as logged.

    Raises:
        ValueError: the recipe's total does not divide among the
            processes, or ``--auto-scale-lr`` on a config without
            ``auto_scale_lr.base_batch_size``.
    """
    loader = cfg.get('train_dataloader')
    if not loader or loader.get('batch_size') is None:
        return ''
    batch = int(loader['batch_size'])
    scale_cfg = cfg.get('auto_scale_lr') or {}
    base = scale_cfg.get('base_batch_size')
    where = f' (config {config})' if config else ''
    if auto_scale_lr:
        if base is None:
            raise ValueError(
                f'--auto-scale-lr: the config has no '
                f'auto_scale_lr.base_batch_size, the total batch its '
                f'learning rate is for{where}. Add --cfg-options '
                'auto_scale_lr.base_batch_size=N')
        cfg.auto_scale_lr.enable = True
    total = batch * world_size
    if base is None:
        message = (f'train_dataloader.batch_size={batch} per process on '
                   f'{world_size} process(es): a total batch of {total}; the '
                   f'config states no auto_scale_lr.base_batch_size{where}')
        _log(message, logging.WARNING if world_size > 1 else logging.INFO)
        return message
    base = int(base)
    if cfg.auto_scale_lr.get('enable', False):
        message = (
            f'--auto-scale-lr: train_dataloader.batch_size={batch} per '
            f'process on {world_size} process(es), a total batch of {total}; '
            f'the learning rate is scaled by {total}/{base} (the config is '
            f'for a total of auto_scale_lr.base_batch_size={base})')
        _log(message, logging.INFO)
        return message
    if batch_size_given:
        message = (f'train_dataloader.batch_size={batch} (--cfg-options) on '
                   f'{world_size} process(es): a total batch of {total}')
        if total == base:
            _log(message, logging.INFO)
        else:
            message += (
                f', where the config is for auto_scale_lr.base_batch_size='
                f'{base}; its learning rate is kept (add --auto-scale-lr '
                'to scale it)')
            _log(message, logging.WARNING)
        return message
    if total == base:
        message = (f'train_dataloader.batch_size={batch} per process on '
                   f'{world_size} process(es): the total batch {base} of '
                   'the config (auto_scale_lr.base_batch_size)')
        _log(message, logging.INFO)
        return message
    if base % world_size:
        raise ValueError(
            f'The config is for a total batch of auto_scale_lr.'
            f'base_batch_size={base}, which does not divide among '
            f'{world_size} processes{where}. Set the per-process batch '
            'with --cfg-options train_dataloader.batch_size=N (a total of '
            f'{world_size}N at the config\'s learning rate; add '
            '--auto-scale-lr to scale the learning rate to it), or the '
            'total with auto_scale_lr.base_batch_size=M, or use a number '
            f'of processes that divides {base}')
    loader['batch_size'] = base // world_size
    message = (
        f'train_dataloader.batch_size: {batch} -> {base // world_size} per '
        f'process on {world_size} process(es), keeping the total batch '
        f'{base} of the config (auto_scale_lr.base_batch_size) at its '
        'learning rate; --auto-scale-lr keeps the per-process batch and '
        'scales the learning rate instead')
    _log(message, logging.WARNING)
    return message


def _log(message: str, level: int) -> None:
    print_log(f'Batch size: {message}', logger='current', level=level)
