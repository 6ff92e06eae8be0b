"""The SynthVOC ablations of RCA + OAA+ (configs/synthvoc/ablations): each
builds the parent's model but for the one setting it names."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rca_mm.registry import MODELS
from ..conftest import REPO

PARENT = 'configs/synthvoc/rca-oaa_r18-w16_8e_synthvoc-112x112.py'
ABLATION = ('configs/synthvoc/ablations/'
            'rca-oaa_r18-w16_8e_synthvoc-112x112_{}.py')
# What each ablation changes: head settings, K included.
EXPECTED = {
    'rsc-only': dict(use_rsa=False),
    'rsa-only': dict(use_rsc=False),
    'no-mixup': dict(use_mixup=False),
    'gamma0': dict(momentum=0.0),
    'gamma0.5': dict(momentum=0.5),
    'gamma0.9': dict(momentum=0.9),
    'gamma0.999': dict(momentum=0.999),
    'k1': dict(num_prototypes=1),
    'k50': dict(num_prototypes=50),
    'kall': dict(num_prototypes=None),
    'mem50': dict(capacity_per_class=50),
}


def settings(rel: str) -> dict:
    init_default_scope('rca_mm')
    cfg = Config.fromfile(osp.join(REPO, rel))
    head = MODELS.build(cfg.model).head
    return dict(
        use_rsc=head.use_rsc,
        use_rsa=head.use_rsa,
        use_mixup=head.contrast_loss.use_mixup
        if head.contrast_loss is not None else None,
        alpha1=head.contrast_loss.loss_weight
        if head.contrast_loss is not None else None,
        momentum=head.memory_bank.momentum,
        capacity_per_class=head.memory_bank.capacity_per_class,
        num_prototypes=cfg.model.head.aggregation.num_prototypes,
        hooks=[h.type for h in cfg.custom_hooks],
        backbone=cfg.model.backbone.to_dict())


def test_every_ablation_file_is_listed():
    found = {
        osp.basename(p)[len('rca-oaa_r18-w16_8e_synthvoc-112x112_'):-3]
        for p in glob.glob(osp.join(REPO, ABLATION.format('*')))
    }
    assert found == set(EXPECTED)


def test_the_parent_is_the_papers_row():
    parent = settings(PARENT)
    assert parent['momentum'] == 0.99 and parent['num_prototypes'] == 10
    assert parent['capacity_per_class'] is None and parent['use_mixup']
    assert parent['use_rsc'] and parent['use_rsa']


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_ablation_changes_one_thing(name):
    parent, ablation = settings(PARENT), settings(ABLATION.format(name))
    changed = {k: v for k, v in ablation.items() if parent[k] != v}
    if name == 'rsa-only':  # no contrast loss: nothing to mix or weigh
        changed.pop('use_mixup'), changed.pop('alpha1')
    assert changed == EXPECTED[name]
