# EPS on MS COCO 2014 (80 classes) with VGG16-LargeFOV, the baseline of the
# RCA paper's COCO row "RCA + EPS": L+1 maps and EPS's saliency loss.
# EPS's COCO recipe (halbielee/EPS script/coco_eps.sh, main.py,
# module/optimizer.py): long side 256..448, crop 321 (the base dataset
# config), batch 16, tau 0.4, lambda 0.9, SGD lr 0.01 (x10 on the new
# layers, biases x2 without weight decay), wd 5e-4, poly 0.9, 256,500
# iterations = 256,500 x 16 / 82,081 = 50.0 epochs. EPS trains ResNet-38 with
# it; the RCA paper's COCO models are VGG16.
#   bash tools/dist_train.sh configs/eps/eps_vgg16_coco.py 4
#   python tools/test.py configs/eps/eps_vgg16_coco.py CKPT --out DIR
# (batch 16 in total: 4 processes x 4 images)
_base_ = [
    '../_base_/models/cam_vgg16-largefov.py',
    '../_base_/datasets/coco14_cls.py', '../_base_/cls_runtime.py',
    '../_base_/schedules/schedule_cls_30e.py'
]
crop_size = {{_base_.crop_size}}
max_epochs = 50
model = dict(
    data_preprocessor=dict(size=crop_size),
    # CAM export as EPS infer.py: a softmax over the L+1 maps per scale;
    # pseudo labels as EPS infer.py: background = the constant 0.2 against
    # the softmax CAMs (--thr 0.20).
    test_cfg=dict(
        activation='softmax',
        pseudo_label=dict(type='ThresholdRecipe', bg_threshold=0.2)),
    head=dict(
        num_classes=80,
        with_background=True,
        saliency_loss=dict(type='EPSSaliencyLoss', tau=0.4, lam=0.9),
        init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform')))
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadSaliencyMap'),
    dict(
        type='RandomResize',
        scale=(448, 448),
        ratio_range=(256 / 448, 1.0),
        keep_ratio=True),
    dict(
        type='mmpretrain.ColorJitter',
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        hue=0.1),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PadToSize', size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
# EPS's COCO batch, 16 in total (4 processes x 4 images).
auto_scale_lr = dict(base_batch_size=16)
# PSA/EPS's four groups: biases x2 without weight decay, also inside the
# head's x10 (so x20 there; BiasRuleOptimWrapperConstructor).
optim_wrapper = dict(
    constructor='BiasRuleOptimWrapperConstructor',
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
# Pseudo labels scored on every listed train2014 image with a label map.
test_evaluator = dict(type='PseudoLabelMetric')
