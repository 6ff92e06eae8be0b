"""BiasRuleOptimWrapperConstructor: PSA/EPS/DeepLabV2's four lr groups."""
import os.path as osp

import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor

from rca_mm.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from rca_mm.utils import register_all_modules
from tests.conftest import REPO

OPTIM = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
PARAMWISE = dict(
    custom_keys={'head': dict(lr_mult=10.0)},
    bias_lr_mult=2.0,
    bias_decay_mult=0.0)


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 2, 1)


def _groups(constructor_type, model):
    register_all_modules()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=constructor_type,
            optim_wrapper_cfg=OPTIM,
            paramwise_cfg=PARAMWISE))
    optimizer = constructor(model).optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    # name -> [lr, weight decay], flattened for pytest.approx
    return {
        f'{names[id(g["params"][0])]} {k}': g[k]
        for g in optimizer.param_groups
        for k in ('lr', 'weight_decay')
    }


def test_four_groups_with_the_head_bias_at_20x_without_decay():
    groups = _groups('BiasRuleOptimWrapperConstructor', Net())
    expected = {
        'backbone.0.weight': (0.01, 5e-4),
        'backbone.0.bias': (0.02, 0.0),
        # norms: mmengine's rules (lr x1; bias_decay_mult reaches BN biases)
        'backbone.1.weight': (0.01, 5e-4),
        'backbone.1.bias': (0.01, 0.0),
        'head.weight': (0.1, 5e-4),
        'head.bias': (0.2, 0.0),
    }
    assert groups == pytest.approx({
        f'{name} {k}': v
        for name, pair in expected.items()
        for k, v in zip(('lr', 'weight_decay'), pair)
    })


def test_mmengine_default_differs_only_on_the_custom_key_bias():
    ours = _groups('BiasRuleOptimWrapperConstructor', Net())
    default = _groups(DefaultOptimWrapperConstructor.__name__, Net())
    assert default['head.bias lr'] == pytest.approx(0.1)
    assert default['head.bias weight_decay'] == pytest.approx(5e-4)
    assert {k: v for k, v in ours.items() if 'head.bias' not in k} == \
        pytest.approx({k: v for k, v in default.items()
                       if 'head.bias' not in k})


@pytest.mark.parametrize(
    'config,head',
    [
        ('configs/deeplabv2/deeplabv2_r101_voc.py', 'decode_head.'),
        # (EPS on R38 has no biases: PSA's convs and classifier are bias-free)
        ('configs/eps/eps_vgg16_coco.py', 'head.'),
    ])
def test_configs_give_new_layer_biases_20x_and_no_decay(config, head):
    register_all_modules()
    cfg = Config.fromfile(osp.join(REPO, config))
    model = MODELS.build(cfg.model)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=cfg.optim_wrapper.constructor,
            optim_wrapper_cfg={
                k: v
                for k, v in cfg.optim_wrapper.items()
                if k not in ('constructor', 'paramwise_cfg')
            },
            paramwise_cfg=cfg.optim_wrapper.paramwise_cfg))
    optimizer = constructor(model).optimizer
    base_lr = cfg.optim_wrapper.optimizer.lr
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    names = {id(p): n for n, p in model.named_parameters()}
    seen = set()
    for group in optimizer.param_groups:
        name = names[id(group['params'][0])]
        if name.startswith(head) and name.endswith('.bias'):
            seen.add('head bias')
            assert group['lr'] == pytest.approx(20 * base_lr), name
            assert group['weight_decay'] == 0, name
        elif name.startswith(head):
            seen.add('head weight')
            assert group['lr'] == pytest.approx(10 * base_lr), name
            assert group['weight_decay'] == pytest.approx(base_wd), name
        else:
            seen.add('backbone')
            assert group['lr'] in (pytest.approx(base_lr),
                                   pytest.approx(2 * base_lr)), name
    assert seen == {'head bias', 'head weight', 'backbone'}
