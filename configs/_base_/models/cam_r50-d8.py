# CAM classifier on a ResNet-50 of mmpretrain, made dense by inheritance only:
# strides (1, 2, 1, 1) and dilations (1, 1, 2, 4) give output stride 8 and
# 2048 channels (the DeepLab way). Any mmseg/mmpretrain backbone works the
# same: set `backbone` and the head's `in_channels` (docs/new_baseline.md).
# ImageNet weights: torchvision's resnet50 (mmpretrain's ResNet uses its key
# names), read from $TORCH_HOME/hub/checkpoints/resnet50-0676ba61.pth when
# present, else downloaded; or set model.backbone.init_cfg.checkpoint=PATH.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='CAMClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=50,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, ),
        # Batch 8 per GPU: keep BN statistics frozen (as WideResNet38 in
        # PSA/EPS); the stem and stage 1 frozen as torchvision fine-tuning.
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    head=dict(type='CAMHead', in_channels=2048, num_classes=20),
    test_cfg=dict(scales=(0.5, 1.0, 1.5, 2.0), flip=True))
