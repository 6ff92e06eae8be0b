# DeepLabV2 (Chen et al., TPAMI 2018): ResNet-101 of output stride 8 and the
# ASPP-L classifier (four 3x3 convs, dilations 6/12/18/24, summed), with
# DeepLabV2's dense CRF at test time. Stage 2 of WSSS (docs/deeplabv2.md).
#
# Backbone: mmseg's `ResNet` (7x7 stem, the original ResNet-101 layout that
# DeepLabV2 used, not ResNetV1c's 3x3 deep stem), pytorch style, so
# torchvision's ImageNet weights load as they are. Stages 3/4 dilated 2/4 on
# every block (no contract_dilation), as in DeepLabV2. BN frozen (statistics
# and affine, norm_eval), as DeepLabV2 and deeplab-pytorch train with batch 10.
# Weights: `torchvision://resnet101` is read from
# $TORCH_HOME/hub/checkpoints/resnet101-63fe2227.pth when that file exists
# (else downloaded), or give a local path:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/resnet101.pth
norm_cfg = dict(type='BN', requires_grad=False)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='CRFEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=101,
        num_stages=4,
        out_indices=(3, ),
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        style='pytorch',
        contract_dilation=False,
        norm_cfg=norm_cfg,
        norm_eval=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')),
    decode_head=dict(
        type='ASPPV2Head',
        in_channels=2048,
        in_index=0,
        dilations=(6, 12, 18, 24),
        num_classes=21,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)),
    # DeepLabV2's multi-scale input training (deeplab-pytorch's
    # DeepLabV2_ResNet101_MSC: scales 0.5 and 0.75 besides 1, loss on each and
    # on their max). Off: --cfg-options model.train_cfg.msc_scales=[].
    train_cfg=dict(msc_scales=(0.5, 0.75)),
    # Dense CRF: deeplab-pytorch's configs (also EPS's and OAA's DeepLabV2
    # test): 10 iterations, Gaussian xy 1 weight 3, bilateral xy 67 rgb 3
    # weight 4. Off: --cfg-options model.test_cfg.crf=None. The CRFs of a test
    # batch run in `crf_workers` processes. The prediction is the MSC max over
    # scales 1, 0.75, 0.5 (deeplab-pytorch's test); single-scale:
    # --cfg-options model.test_cfg.msc_scales=[].
    test_cfg=dict(
        mode='whole',
        msc_scales=(0.5, 0.75),
        crf=dict(
            num_iters=10,
            gaussian_sxy=1.,
            gaussian_compat=3.,
            bilateral_sxy=67.,
            bilateral_srgb=3.,
            bilateral_compat=4.),
        crf_workers=4))
