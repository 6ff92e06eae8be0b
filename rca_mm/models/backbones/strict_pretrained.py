"""Strict loading of a backbone's ``Pretrained`` weights, with clear errors.

mmengine's ``Pretrained`` initializer loads with ``strict=False``: a file in
the wrong key layout (e.g. an unconverted torchvision file) only logs a
warning and leaves the backbone random. The backbones here load it strictly
and say how to get a usable file.
"""
import os.path as osp
from typing import List, Optional, Tuple, Union

from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize
from mmengine.runner.checkpoint import (CheckpointLoader,
                                        _load_checkpoint_with_prefix)


def load_backbone_checkpoint(module: BaseModule, pretrained: dict,
                             how_to_get: str) -> None:
    """Load ``init_cfg=dict(type='Pretrained', ...)`` strictly, with clear
    errors.

    mmengine's ``Pretrained`` initializer loads with ``strict=False``: a file
    in the wrong key layout (e.g. an unconverted torchvision file) only logs
    a warning and leaves the backbone random. Here a missing file, missing or
    unexpected keys and shape mismatches all raise.

    Args:
        module (BaseModule): the backbone.
        pretrained (dict): the ``Pretrained`` init config: ``checkpoint`` and
            optionally ``prefix`` (e.g. ``'backbone.'`` to take the backbone
            out of a whole-model checkpoint) and ``map_location``.
        how_to_get (str): how to obtain the file, used in the error messages.

    Raises:
        FileNotFoundError: a local ``checkpoint`` path does not exist.
        ValueError: the file's keys or shapes do not match the backbone.
    """
    path = pretrained['checkpoint']
    name = type(module).__name__
    if '://' not in str(path) and not osp.isfile(osp.expanduser(path)):
        raise FileNotFoundError(
            f'{name}: pretrained weights {path!r} (init_cfg.checkpoint) do '
            f'not exist; {how_to_get}, or set init_cfg=None to train from '
            'scratch.')
    map_location = pretrained.get('map_location', 'cpu')
    prefix = pretrained.get('prefix')
    if prefix is None:
        ckpt = CheckpointLoader.load_checkpoint(path, map_location)
        state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt,
                                                                dict) else ckpt
    else:
        state_dict = _load_checkpoint_with_prefix(prefix, path, map_location)
    state_dict = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state_dict.items()
    }
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise ValueError(
            f'{name}: the keys of {path!r} do not match the backbone '
            f'({len(missing)} missing, e.g. {missing[:3]}; {len(unexpected)} '
            f'unexpected, e.g. {unexpected[:3]}). Is it an unconverted file? '
            f'To get a usable file, {how_to_get}.')
    wrong = [
        f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items() if v.shape != own[k].shape
    ]
    if wrong:
        raise ValueError(f'{name}: shape mismatch in {path!r}: '
                         f'{"; ".join(wrong[:5])}')
    module.load_state_dict(state_dict, strict=True)
    print_log(
        f'{name}: loaded {len(state_dict)} tensors of {path!r} strictly',
        logger='current')


def split_init_cfg(
    init_cfg: Union[dict, List[dict],
                    None]) -> Tuple[Optional[dict], List[dict]]:
    """Split an ``init_cfg`` into its ``Pretrained`` entry and the others."""
    cfgs = [] if init_cfg is None else (
        [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg))
    pretrained = [c for c in cfgs if c['type'] == 'Pretrained']
    others = [c for c in cfgs if c['type'] != 'Pretrained']
    return (pretrained[-1] if pretrained else None), others


class StrictPretrainedMixin:
    """``init_weights`` that loads a ``Pretrained`` ``init_cfg`` strictly.

    A class using it sets ``HOW_TO_GET``: how to obtain its weights file,
    quoted in the errors.
    """

    HOW_TO_GET = ''

    def init_weights(self) -> None:
        """Apply ``init_cfg``, loading a ``Pretrained`` file strictly."""
        pretrained, others = split_init_cfg(self.init_cfg)
        if pretrained is None:
            super().init_weights()
            return
        if others:
            initialize(self, others)
        load_backbone_checkpoint(self, pretrained, self.HOW_TO_GET)
        self._is_init = True
