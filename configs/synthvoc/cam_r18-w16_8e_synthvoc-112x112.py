# The CAM baseline on SynthVOC (docs/synthvoc.md), small enough to train on 2
# CPU cores in minutes: mmpretrain's ResNet-18 of width 16, output stride 8
# (configs/_base_/models/cam_r18-w16.py), started from the SynthNet-pretrained
# weights data/pretrained/resnet18-w16-d8_synthnet.pth (docs/synthnet.md;
# `bash tools/run_synthvoc.sh` makes them on first use). From random weights
# instead: --cfg-options model.backbone.init_cfg=None.
#   python tools/train.py configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py
#   python tools/test.py configs/synthvoc/cam_r18-w16_8e_synthvoc-112x112.py \
#       CKPT --out DIR        # pseudo labels of train_aug, scored on train
_base_ = [
    '../_base_/models/cam_r18-w16.py', '../_base_/datasets/synthvoc_cls.py',
    '../_base_/cls_runtime.py', '../_base_/schedules/schedule_cls_30e.py'
]
max_epochs = 8
crop_size = {{_base_.crop_size}}
model = dict(
    data_preprocessor=dict(size=crop_size),
    # Pseudo labels of train_aug by a background threshold on the normalised
    # CAMs (IRN/EPS style).
    test_cfg=dict(pseudo_label=dict(type='ThresholdRecipe', bg_threshold=0.2)))
# One learning rate for all layers, cosine decay (the schedule measured from
# scratch, kept unchanged for the pretrained start: docs/synthnet.md).
optim_wrapper = dict(
    optimizer=dict(lr=0.05),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        eta_min=1e-4)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# One process of 16 images (the dataset config's batch): the total batch of
# this learning rate, kept on any number of processes.
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(logger=dict(interval=25))
# 128x128 images: evaluate and export 16 at a time.
val_dataloader = dict(batch_size=16)
test_dataloader = dict(batch_size=16)
randomness = dict(seed=0)
# The pseudo labels scored on the `train` subset.
test_evaluator = dict(
    type='PseudoLabelMetric', score_list='ImageSets/Segmentation/train.txt')
