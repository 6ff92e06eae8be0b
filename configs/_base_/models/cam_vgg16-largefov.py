# CAM classifier on VGG16-LargeFOV (OAA's "vgg16d"): output stride 8, three
# new 3x3 conv layers of 512 channels before the class-aware 1x1 conv (OAA).
# ImageNet weights: tools/model_converters/vgg16_torchvision.py
# (docs/models.md).
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
        type='VGG16LargeFOV',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/vgg16_largefov_torchvision.pth')),
    head=dict(
        type='CAMHead',
        in_channels=512,
        num_classes=20,
        num_convs=3,
        channels=512),
    # CAM export: EPS's scales, with flips.
    test_cfg=dict(scales=(0.5, 1.0, 1.5, 2.0), flip=True))
