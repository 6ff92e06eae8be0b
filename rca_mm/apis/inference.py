"""Build a model from a config and load its checkpoint strictly.

.. code:: text

    init_model(config, checkpoint, device, cfg_options)
      |- Config.fromfile + merge cfg_options; rca_mm's modules and scope
      |- MODELS.build(cfg.model)   (no init_weights: no pretrained file read)
      |- load_checkpoint_strictly  (an unallocated memory bank takes the
      |                             saved shape; a mismatch names the file)
      '- dataset_meta: the checkpoint's meta, else the config's dataset

mmseg's ``mmseg.apis.init_model`` does the same for mmseg's segmentors, but
sets ``model.pretrained`` (which a ``CAMClassifier`` does not take), loads
non-strictly (a checkpoint of another config only warns) and falls back on
Cityscapes' class names; this one keeps its signature and return value.
"""
import os.path as osp
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rca_mm.engine.config_checks import check_checkpoint_fits
from rca_mm.registry import DATASETS, MODELS

ConfigLike = Union[str, Path, Config]


def load_config(config: ConfigLike,
                cfg_options: Optional[dict] = None) -> Config:
    """The config of a file (or a copy of a ``Config``) with ``cfg_options``
    merged in.

    Raises:
        FileNotFoundError: the config file does not exist.
        TypeError: ``config`` is neither a path nor a ``Config``.
    """
    if isinstance(config, (str, Path)):
        if not osp.isfile(str(config)):
            raise FileNotFoundError(f'config file {str(config)!r} does not '
                                    'exist')
        config = Config.fromfile(str(config))
    elif isinstance(config, Config):
        config = config.copy()
    else:
        raise TypeError('config must be a file name or a Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        config.merge_from_dict(cfg_options)
    return config


def load_checkpoint_strictly(model: nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint``'s weights into ``model``, every key and shape.

    A region memory bank that is not allocated takes the checkpoint's shape
    (a training checkpoint's entries, or none in a released file), so no
    dataset is needed to size it first.

    Args:
        model (nn.Module): the built model.
        checkpoint (str): the checkpoint file (an mmengine checkpoint or a
            bare state dict).

    Returns:
        dict: the loaded checkpoint.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the weights do not fit the model (missing, unexpected or
            mis-shaped keys); the message names the file.
    """
    return check_checkpoint_fits(model, checkpoint)


def config_dataset_meta(cfg: Config) -> Optional[dict]:
    """``classes`` and ``palette`` of the config's test dataset, without
    building it (no data needed); None when it names no classes."""
    from rca_mm.datasets import WSSSDataset
    from rca_mm.fileio import voc_palette
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = dict(loader.get('dataset') or {})
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and dataset.get('type'):
        dataset_cls = DATASETS.get(dataset['type'])
        if isinstance(dataset_cls, type) and issubclass(
                dataset_cls, WSSSDataset):
            classes = dataset_cls.resolve_classes(
                data_root=dataset.get('data_root') or '')
        else:
            classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    if not classes:
        return None
    classes = tuple(classes)
    return dict(classes=classes, palette=voc_palette(len(classes)).tolist())


def init_model(config: ConfigLike,
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """A model of rca_mm (or mmseg) ready for inference.

    Args:
        config (str | Path | Config): the config file or object.
        checkpoint (str, optional): the checkpoint; its weights must fit the
            model exactly. Default: None (random weights, with a warning).
        device (str): e.g. ``'cpu'``, ``'cuda:0'``. Default: 'cpu'.
        cfg_options (dict, optional): overrides of config keys, as
            ``--cfg-options``. Default: None.

    Returns:
        nn.Module: the model in eval mode on ``device``, with ``cfg`` and
        ``dataset_meta`` (``classes``, ``palette``: the checkpoint's, else
        the config's dataset).

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        ValueError: the checkpoint does not fit the config's model, or the
            class names do not match its classes.
    """
    from rca_mm.utils import register_all_modules
    cfg = load_config(config, cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'rca_mm'))
    # Building reads no weights (init_weights is not called), so the
    # backbone's pretrained file need not exist.
    model = MODELS.build(cfg.model)
    meta = None
    if checkpoint is not None:
        loaded = load_checkpoint_strictly(model, str(checkpoint))
        meta = (loaded.get('meta') or {}).get('dataset_meta')
    else:
        warnings.warn('init_model: no checkpoint given; the model has random '
                      'weights')
    if meta is None:
        meta = config_dataset_meta(cfg)
    if meta is not None:
        meta = dict(
            classes=tuple(meta['classes']), palette=meta.get('palette'))
        check_class_count(model, meta['classes'], checkpoint or '(config)')
    model.dataset_meta = meta
    model.cfg = cfg
    return model.to(device).eval()


def check_class_count(model: nn.Module, classes: Sequence[str],
                      source: str) -> None:
    """A classifier has one output per foreground class, a segmentor one per
    class; raise when ``classes`` (background first) disagree."""
    if hasattr(model, 'head') and hasattr(model.head, 'num_classes'):
        expected, key = len(classes) - 1, 'model.head.num_classes'
        got = model.head.num_classes
    elif hasattr(model, 'decode_head'):
        expected, key = len(classes), 'model.decode_head.num_classes'
        got = model.decode_head.num_classes
    else:
        return
    if got != expected:
        raise ValueError(
            f'{key}={got} but the class names of {source} give {expected} '
            f'({len(classes)} names with the background: '
            f'{", ".join(map(str, classes[:4]))}, ...)')


__all__ = [
    'init_model', 'load_checkpoint_strictly', 'load_config',
    'config_dataset_meta', 'check_class_count'
]
