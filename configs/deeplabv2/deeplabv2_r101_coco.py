# Stage 2 on MS COCO 2014: DeepLabV2 (ResNet-101, OS 8, ASPP-L) trained on
# the pseudo labels of train2014, scored on val2014 with dense CRF
# (docs/deeplabv2.md). Recipe: deeplab-pytorch configs/cocostuff164k.yaml
# (batch 5 x 2 accumulated = 10, here batch 10; 100k iterations; crop 321;
# SGD lr 2.5e-4, x10 on the classifier, momentum 0.9, wd 5e-4, poly 0.9).
#   python tools/train.py configs/deeplabv2/deeplabv2_r101_coco.py \
#       --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
_base_ = [
    '../_base_/models/deeplabv2_r101-d8.py',
    '../_base_/datasets/coco14_pseudo_seg.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_20k.py'
]
max_iters = 100000
crop_size = (321, 321)
model = dict(
    data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=81))
# deeplab-pytorch's groups: head weights x10, head biases x20 without weight
# decay (BiasRuleOptimWrapperConstructor applies the bias rule inside the
# custom key; ResNet's convs have no biases and its BN is frozen).
optim_wrapper = dict(
    constructor='BiasRuleOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={'decode_head': dict(lr_mult=10.)},
        bias_lr_mult=2.0,
        bias_decay_mult=0.0))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
# val2014 has ~40k images: validate twice, at 50k and at the end.
train_cfg = dict(max_iters=max_iters, val_interval=50000)
default_hooks = dict(checkpoint=dict(interval=10000))
