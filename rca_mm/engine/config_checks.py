"""Early checks of a run's config, before anything is built or loaded:
``--cfg-options`` keys and values, and ``load_from`` against the model."""
import difflib
import inspect
from typing import Any, Dict, Iterable, List, Optional

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader

import rca_mm.registry as registries
from rca_mm.utils.safe_checkpoint import safe_torch_load

# Top-level keys a --cfg-options may add: what Runner.from_cfg reads.
_RUNNER_KEYS = frozenset(
    inspect.signature(Runner.__init__).parameters) | {
        'launcher', 'runner_type', 'model_wrapper_cfg', 'work_dir',
        'find_unused_parameters', 'tta_model', 'tta_pipeline'}
# Read by mmengine's optimizer wrapper constructor, not the wrapper.
_OPTIM_WRAPPER_KEYS = frozenset({'constructor', 'paramwise_cfg'})
# What mmengine's Runner.build_dataloader passes on to DataLoader.
_DATALOADER_KEYS = frozenset(inspect.signature(DataLoader.__init__).parameters
                             ) | {'sampler', 'batch_sampler', 'collate_fn',
                                  'dataset', 'worker_init_fn'}


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


def _check_value_type(option: str, old: Any, new: Any, config: str,
                      what: str = 'the config\'s value') -> None:
    """Refuse a ``--cfg-options`` value of another kind than ``old``: text
    or a container for a number or a flag, a flag for a number, or a
    single value for a dict. None, either way, is always accepted."""
    if old is None or new is None or old is inspect.Parameter.empty:
        return
    number, flag = (int, float), bool
    wrong = (
        isinstance(old, (number, flag)) and isinstance(
            new, (str, list, tuple, dict))
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
                    _refuse(option, key, where, list(node) +
                            list(_RUNNER_KEYS), config)
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


def check_checkpoint_fits(model: nn.Module, filename: str) -> None:
    """Refuse a checkpoint whose weights are not those of ``model``.

    mmengine loads ``load_from`` non-strictly: missing, unexpected and
    mis-shaped weights only give a warning, and the test then scores a
    partly random model. This loads the checkpoint strictly into ``model``
    (the Runner loads it again later; the weights are the same).

    Args:
        model (nn.Module): the built model (a wrapper's ``module`` is used).
        filename (str): the checkpoint.

    Raises:
        ValueError: the keys that are missing, unexpected or mis-shaped.
    """
    model = getattr(model, 'module', model)
    checkpoint = safe_torch_load(filename, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint) if isinstance(
        checkpoint, dict) else checkpoint
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
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
            shown = ', '.join(keys[:8]) + (
                f' (+{len(keys) - 8} more)' if len(keys) > 8 else '')
            problems.append(f'{len(keys)} {name} keys: {shown}')
    if problems:
        raise ValueError(
            f'checkpoint {filename!r} does not fit the model '
            f'{type(model).__name__} of the config ({"; ".join(problems)}). '
            'Was it trained with another config?')
