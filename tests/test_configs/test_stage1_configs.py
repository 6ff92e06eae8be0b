"""The paper-scale stage-1 configs (configs/{cam,oaa,eps,rca}): their
settings, one training step and one prediction of each model on tiny inputs,
and the one-key differences of the ablations (configs/rca/ablations)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.registry import MODELS
from ..conftest import REPO

VOC = ('cam/cam_vgg16_voc.py', 'cam/cam_r38_voc.py', 'cam/cam_r50_voc.py',
       'oaa/oaa_vgg16_voc.py', 'oaa/oaa_r38_voc.py', 'eps/eps_r38_voc.py',
       'rca/rca_oaa_vgg16_voc.py', 'rca/rca_oaa_r38_voc.py',
       'rca/rca_eps_r38_voc.py', 'rca/rca_r50_voc.py')
COCO = ('oaa/oaa_vgg16_coco.py', 'eps/eps_vgg16_coco.py',
        'rca/rca_eps_vgg16_coco.py', 'rca/rca_oaa_vgg16_coco.py')
# One training step of each distinct model: the OAA configs build the model
# of their CAM baseline, each RCA config contains its baseline's backbone and
# head options (cam_r38/eps_r38/cam_r50 in rca_oaa_r38/rca_eps_r38/rca_r50),
# and every config is also built by test_all_configs.py.
MODEL_CONFIGS = ('cam/cam_vgg16_voc.py', 'eps/eps_vgg16_coco.py',
                 'rca/rca_oaa_vgg16_voc.py', 'rca/rca_oaa_vgg16_coco.py',
                 'rca/rca_eps_vgg16_coco.py', 'rca/rca_oaa_r38_voc.py',
                 'rca/rca_eps_r38_voc.py', 'rca/rca_r50_voc.py')
PARENT = 'rca/rca_oaa_vgg16_voc.py'
ABLATION = 'rca/ablations/rca_oaa_vgg16_voc_{}.py'
# Each ablation and the keys (flattened, list items by index) in which it
# differs from its parent, with the value there.
ABLATIONS = {
    'rsc-only': {
        'model.head.use_rsa': False,
        'model.head.loss_weight': 1.0
    },
    'rsa-only': {
        'model.head.use_rsc': False
    },
    'no-mixup': {
        'model.head.contrast_loss.use_mixup': False
    },
    **{
        f'gamma{g}': {
            'model.head.memory_bank.momentum': float(g)
        }
        for g in ('0', '0.5', '0.8', '0.9', '0.999')
    },
    **{
        f'k{k}': {
            'model.head.aggregation.num_prototypes': k
        }
        for k in (1, 20, 50, 100)
    },
    'kall': {
        'model.head.aggregation.num_prototypes': None
    },
    **{
        f'mem{m}': {
            'model.head.memory_bank.capacity_per_class': m
        }
        for m in (100, 500)
    },
}


def load(rel: str) -> Config:
    return Config.fromfile(osp.join(REPO, 'configs', rel))


def train_size(cfg: Config) -> tuple:
    """The fixed training input size: the crop, or OAA's squashed size."""
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'RandomCrop':
            return tuple(t['crop_size'])
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'Resize' and not t['keep_ratio']:
            return tuple(t['scale'])
    raise AssertionError('no fixed training size in the pipeline')


def hook_types(cfg: Config) -> list:
    return [h['type'] for h in cfg.get('custom_hooks', [])]


@pytest.mark.parametrize('rel', VOC + COCO)
def test_settings(rel):
    cfg = load(rel)
    coco = rel in COCO
    head = cfg.model.head
    assert head.num_classes == (80 if coco else 20)
    assert cfg.train_dataloader.dataset.type == ('WSSSCOCODataset'
                                                 if coco else 'WSSSVOCDataset')
    assert tuple(cfg.model.data_preprocessor.size) == train_size(cfg)
    pipeline = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    evaluator = cfg.test_evaluator
    assert evaluator.type == 'PseudoLabelMetric'
    # VOC: labels for train_aug, scored on train; COCO: every listed image.
    assert evaluator.get('score_list') == (None if coco else
                                           'ImageSets/Segmentation/train.txt')
    assert cfg.test_dataloader.dataset.ann_file == (
        'ImageSets/train.txt'
        if coco else 'ImageSets/Segmentation/train_aug.txt')
    assert cfg.model.test_cfg.get('oaa_store') is None
    assert set(evaluator) <= {'type', 'score_list'}
    recipe = cfg.model.test_cfg.pseudo_label
    if 'oaa' in rel:
        # Whole images for the accumulation; saliency + PSA CRF labels.
        assert 'RandomCrop' not in pipeline
        assert hook_types(cfg)[0] == 'OAAAccumulationHook'
        assert recipe == dict(
            type='SaliencyRecipe', crf=True, crf_cfg=dict(alpha=4))
    else:
        assert 'OAAAccumulationHook' not in hook_types(cfg)
        assert recipe == dict(type='ThresholdRecipe', bg_threshold=0.2)
    if 'eps' in rel:
        assert head.with_background
        assert head.saliency_loss.type == 'EPSSaliencyLoss'
        assert head.saliency_loss.lam == (0.9 if coco else 0.5)
        assert 'LoadSaliencyMap' in pipeline
        assert not cfg.train_dataloader.dataset.pipeline[1].get('optional')
        assert cfg.param_scheduler[0]['type'] == 'PolyLR'
    if 'rca' in rel:
        assert head.type == 'RCAHead'
        assert hook_types(cfg)[-1:] == ['RCAHook']
        assert cfg.model.head.aggregation.num_prototypes == 10
        capacity = head.get('memory_bank', {}).get('capacity_per_class')
        assert capacity == (500 if coco else None)
    else:
        assert head.type == 'CAMHead'


def test_rca_configs_add_only_the_head_and_hooks():
    """Each RCA config equals its baseline but for model.head and hooks."""
    pairs = {
        'rca/rca_oaa_vgg16_voc.py': 'oaa/oaa_vgg16_voc.py',
        'rca/rca_oaa_r38_voc.py': 'oaa/oaa_r38_voc.py',
        'rca/rca_eps_r38_voc.py': 'eps/eps_r38_voc.py',
        'rca/rca_eps_vgg16_coco.py': 'eps/eps_vgg16_coco.py',
        'rca/rca_oaa_vgg16_coco.py': 'oaa/oaa_vgg16_coco.py',
        'rca/rca_r50_voc.py': 'cam/cam_r50_voc.py',
    }
    for rca, base in pairs.items():
        diff = flat_diff(load(base), load(rca))
        assert diff, rca
        assert all(
            k.startswith(('model.head.', 'custom_hooks'))
            for k in diff), (rca, sorted(diff))


def test_eps_optimizer_follows_eps():
    """lr 0.01, x10 on the head, backbone biases x2 without weight decay."""
    cfg = load('eps/eps_vgg16_coco.py')
    init_default_scope('rca_mm')
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {id(g['params'][0]): g for g in wrapper.optimizer.param_groups}
    weight = groups[id(model.backbone.conv1_1.weight)]
    bias = groups[id(model.backbone.conv1_1.bias)]
    head = groups[id(model.head.classifier.weight)]
    assert weight['lr'] == pytest.approx(0.01)
    assert weight['weight_decay'] == pytest.approx(5e-4)
    assert bias['lr'] == pytest.approx(0.02) and bias['weight_decay'] == 0
    assert head['lr'] == pytest.approx(0.1)


def make_samples(num_classes: int, size: int, tags: torch.Tensor) -> list:
    samples = []
    for i, row in enumerate(tags):
        ds = SegDataSample(
            metainfo=dict(
                img_path=f'img{i}.jpg',
                img_name=f'img{i}',
                sample_idx=i,
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        ds.gt_img_labels = row.float()
        sal = torch.zeros(1, size, size)
        sal[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1.0
        ds.gt_saliency = PixelData(data=sal)
        samples.append(ds)
    return samples


@pytest.mark.parametrize('rel', MODEL_CONFIGS)
def test_train_step_and_predict(rel):
    torch.manual_seed(0)
    cfg = load(rel)
    init_default_scope('rca_mm')
    cfg.model.backbone.init_cfg = None  # no ImageNet weights here
    model = MODELS.build(cfg.model)
    head = model.head
    num_classes = head.num_classes
    size = 32  # 4x4 feature maps: WideResNet-38 is heavy on 2 CPU cores
    tags = torch.zeros(2, num_classes, dtype=torch.bool)
    tags[0, [0, 3]] = True
    tags[1, 3] = True
    samples = make_samples(num_classes, size, tags)
    inputs = torch.randn(2, 3, size, size)
    rca = cfg.model.head.type == 'RCAHead'
    if rca:
        head.memory_bank.allocate(tags)
        # Fill every (image, tag) entry, so the contrast has positives and
        # negatives (at random init the gate of Eq. 3 passes nothing).
        pairs = tags.nonzero()
        head.memory_bank.update(
            torch.randn(len(pairs), head.feat_channels), pairs[:, 1], pairs[:,
                                                                            0],
            torch.ones(len(pairs), dtype=torch.bool))
    model.train()
    losses = model.loss(inputs, samples)
    expected = {'loss_cls'}
    if rca:
        expected = {'loss_cls_p', 'loss_rsc'}
        if head.use_rsa:
            expected.add('loss_cls_o')
    if cfg.model.head.get('saliency_loss'):
        expected |= {
            k.replace('loss_cls', 'loss_sal')
            for k in expected if k.startswith('loss_cls')
        }
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    if rca:
        assert losses['loss_rsc'] > 0
    sum(losses.values()).backward()
    assert head.classifier.weight.grad.abs().sum() > 0
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    assert trainable and trainable[-1].grad is not None

    # One scale, no flip: the configs' multi-scale export is the same code.
    assert tuple(cfg.model.test_cfg.scales) == (0.5, 1.0, 1.5, 2.0)
    model.eval()
    model.scales, model.flip = (1.0, ), False
    with torch.no_grad():
        out = model.predict(inputs, make_samples(num_classes, size, tags))
    for sample, row in zip(out, tags):
        cams = sample.pred_cams.data
        assert cams.shape == (num_classes, size, size)
        assert cams[~row].abs().sum() == 0
        assert 0 <= cams.min() and cams.max() <= 1
        assert sample.pred_score.shape == (num_classes, )
        assert ('pred_bg'
                in sample) == bool(cfg.model.head.get('with_background'))


def flatten(value, prefix=''):
    """``{'a.b.0.c': leaf}`` of nested dicts and lists."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix[:-1]: value}
    flat = {}
    for key, item in items:
        flat.update(flatten(item, f'{prefix}{key}.'))
    return flat


def flat_diff(a: Config, b: Config) -> dict:
    """Keys whose value differs (or exists in only one), b's value."""
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    return {
        k: fb.get(k, '<missing>')
        for k in set(fa) | set(fb)
        if fa.get(k, '<missing>') != fb.get(k, '<missing>')
    }


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_ablation_changes_one_thing(name):
    diff = flat_diff(load(PARENT), load(ABLATION.format(name)))
    assert diff == ABLATIONS[name]


def test_ablation_defaults_are_the_parents():
    """The parent is the paper's row: gamma 0.99, K 10, adaptive memory."""
    cfg = load(PARENT)
    assert cfg.model.head.memory_bank.momentum == 0.99
    assert cfg.model.head.memory_bank.capacity_per_class is None
    assert cfg.model.head.contrast_loss.use_mixup
    assert cfg.custom_hooks[1] == dict(type='RCAHook')
    assert cfg.model.head.aggregation == dict(
        type='PrototypeAggregation', num_prototypes=10)
