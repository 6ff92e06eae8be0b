# Stage 2 on PASCAL VOC 2012: DeepLabV2 (ResNet-101, OS 8, ASPP-L) trained on
# the pseudo labels of train_aug, scored on val with dense CRF
# (docs/deeplabv2.md). Recipe: deeplab-pytorch configs/voc12.yaml, as used by
# EPS and OAA: 20k iterations, batch 10, crop 321, random scale 0.5-1.5,
# flip, SGD lr 2.5e-4 (x10 on the classifier), momentum 0.9, wd 5e-4, poly
# 0.9 (configs/_base_/schedules/schedule_20k.py).
#   python tools/train.py configs/deeplabv2/deeplabv2_r101_voc.py \
#       --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
_base_ = [
    '../_base_/models/deeplabv2_r101-d8.py',
    '../_base_/datasets/voc12_pseudo_seg.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_20k.py'
]
crop_size = (321, 321)
model = dict(
    data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=21))
# deeplab-pytorch's groups: head weights x10, head biases x20 without weight
# decay (BiasRuleOptimWrapperConstructor applies the bias rule inside the
# custom key; ResNet's convs have no biases and its BN is frozen).
optim_wrapper = dict(
    constructor='BiasRuleOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={'decode_head': dict(lr_mult=10.)},
        bias_lr_mult=2.0,
        bias_decay_mult=0.0))
