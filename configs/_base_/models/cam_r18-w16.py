# A small CAM classifier for SynthVOC on CPU: mmpretrain's ResNet-18 at width
# 16 (128 channels at the end), output stride 8, started from the weights
# pretrained on SynthNet (SynthVOC's ImageNet, docs/synthnet.md) as the VOC
# configs start from ImageNet's. Made once by tools/run_synthvoc.sh; from
# scratch instead: --cfg-options model.backbone.init_cfg=None
pretrained = 'data/pretrained/resnet18-w16-d8_synthnet.pth'
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
        type='StrictResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(type='CAMHead', in_channels=128, num_classes=10),
    test_cfg=dict(scales=(1.0, 0.5, 1.5), flip=True))
