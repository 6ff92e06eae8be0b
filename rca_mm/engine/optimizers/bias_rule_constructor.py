"""The 4-group learning-rate rule of PSA, EPS and DeepLabV2 in mmengine."""
from typing import List, Optional, Union

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from rca_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BiasRuleOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's constructor, with the bias rule applied inside custom keys.

    PSA/EPS (``get_parameter_groups``) and DeepLabV2 (deeplab-pytorch) train
    four groups: backbone weights at lr, backbone biases at 2 x lr, new-layer
    weights at 10 x lr and new-layer biases at 20 x lr, biases without weight
    decay. mmengine's ``DefaultOptimWrapperConstructor`` skips
    ``bias_lr_mult``/``bias_decay_mult`` for any parameter that matches a
    ``custom_keys`` entry, so ``custom_keys={'head': dict(lr_mult=10)}`` with
    ``bias_lr_mult=2`` gives the head's biases 10 x, not 20 x. Here the two
    bias multipliers also apply on top of a matched custom key (to
    non-normalisation biases, as mmengine's own rule); everything else is
    mmengine's.
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        first = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        bias = getattr(module, 'bias', None)
        if (not isinstance(bias, nn.Parameter) or isinstance(module, _NORMS)
                or is_dcn_module):
            return
        keys = self.paramwise_cfg.get('custom_keys', {})
        if not any(key in f'{prefix}.bias' for key in keys):
            return  # mmengine's own bias rule applied
        lr_mult = self.paramwise_cfg.get('bias_lr_mult', None)
        decay_mult = self.paramwise_cfg.get('bias_decay_mult', None)
        # The module's own parameters come first, before its children's.
        for group in params[first:]:
            if group['params'][0] is bias:
                if lr_mult is not None:
                    group['lr'] *= lr_mult
                if decay_mult is not None and 'weight_decay' in group:
                    group['weight_decay'] *= decay_mult
                return
