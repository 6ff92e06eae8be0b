# CAM classifier on WideResNet-38 (PSA/EPS "resnet38d"): output stride 8, 4096
# channels, dropout 0.5 before the class-aware 1x1 conv (PSA's resnet38_cls;
# the EPS configs set 0, as EPS's resnet38_eps).
# ImageNet weights: tools/model_converters/resnet38d.py (docs/models.md).
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
        type='WideResNet38',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/resnet38d_ilsvrc.pth')),
    head=dict(
        type='CAMHead', in_channels=4096, num_classes=20, dropout_ratio=0.5),
    test_cfg=dict(scales=(0.5, 1.0, 1.5, 2.0), flip=True))
