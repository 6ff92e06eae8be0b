# Stage 2 on SynthVOC, small enough to train on 2 CPU cores in a few
# minutes: DeepLabV2's structure (CRFEncoderDecoder, a ResNet of output
# stride 8 with dilated stages 3/4, ASPP-L head summing four dilated 3x3
# convs) with the stage-1 classifiers' backbone (mmpretrain's ResNet-18 at
# width 16) instead of ResNet-101, started from the same SynthNet-pretrained
# weights (docs/synthnet.md), as DeepLabV2 starts from ImageNet's. ASPP
# dilations scaled to the 14x14 feature map of a 112 crop (2/4/6/8 instead
# of 6/12/18/24, the same fraction of the map as on VOC's 41x41).
# Dense CRF at test time with DeepLabV2's parameters (base model config).
#   python tools/train.py CONFIG \
#       --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
#   python tools/test.py CONFIG CKPT                               # with CRF
#   python tools/test.py CONFIG CKPT --cfg-options model.test_cfg.crf=None
_base_ = [
    '../_base_/models/deeplabv2_r101-d8.py',
    '../_base_/datasets/synthvoc_pseudo_seg.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_20k.py'
]
max_iters = 1000
crop_size = (112, 112)
pretrained = 'data/pretrained/resnet18-w16-d8_synthnet.pth'
model = dict(
    data_preprocessor=dict(size=crop_size),
    # The schedule below is the one measured from scratch, unchanged; so is
    # the trainable BN (the pretrained start is the only change).
    backbone=dict(
        _delete_=True,
        type='StrictResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, ),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=128, dilations=(2, 4, 6, 8), num_classes=11),
    # No MSC: it costs 1.8x the step on 2 CPU cores, and the SynthVOC tables
    # (docs/results_synthvoc.md) are measured single-scale.
    train_cfg=dict(msc_scales=()),
    test_cfg=dict(msc_scales=(), crf_workers=2))
# A larger lr than DeepLabV2's fine-tuning lr (set for training from
# scratch, kept for the pretrained start).
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.)}))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# One process of 16 images (the dataset config's batch), kept in total on
# any number of processes.
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
