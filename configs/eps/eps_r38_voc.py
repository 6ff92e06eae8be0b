# EPS (Lee et al., CVPR 2021) on PASCAL VOC 2012 with WideResNet-38: L+1
# class maps (the last one background, no dropout before the classifier,
# Xavier-uniform init: halbielee/EPS network/resnet38_eps.py) and the saliency
# loss with tau 0.4, lambda 0.5 (script/voc12_eps.sh, main.py). Needs EPS's
# saliency maps (PFAN) in SaliencyMaps/ (docs/datasets.md).
#
# EPS's own recipe (script/voc12_eps.sh, main.py, module/optimizer.py,
# module/dataloader.py): batch 8, crop 448 after resizing the long side to
# 256..512, 20,000 iterations, SGD lr 0.01 (x10 on the new classifier, biases
# x2 without weight decay), momentum 0.9 (PSA's PolyOptimizer), wd 5e-4,
# poly decay of power 0.9. 20,000 x 8 / 10,582 = 15.1 epochs: here 15 epochs
# (epoch-based, so that RCA's epoch hooks work) with a per-iteration poly.
#   bash tools/dist_train.sh configs/eps/eps_r38_voc.py 4
#   python tools/test.py configs/eps/eps_r38_voc.py CKPT --out DIR
_base_ = ['../cam/cam_r38_voc.py']
crop_size = (448, 448)
max_epochs = 15
model = dict(
    data_preprocessor=dict(size=crop_size),
    # CAM export as EPS infer.py: a softmax over the L+1 maps per scale.
    # Pseudo labels as EPS infer.py: the foreground maps summed and
    # max-normalised, background = the constant 0.2 (--thr 0.20). The
    # classifier's own background map instead:
    # --cfg-options model.test_cfg.pseudo_label._delete_=True
    #     model.test_cfg.pseudo_label.type=BackgroundMapRecipe
    test_cfg=dict(
        activation='softmax',
        pseudo_label=dict(type='ThresholdRecipe', bg_threshold=0.2)),
    head=dict(
        dropout_ratio=0.0,
        with_background=True,
        saliency_loss=dict(type='EPSSaliencyLoss', tau=0.4, lam=0.5),
        init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform')))
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadSaliencyMap'),
    dict(
        type='RandomResize',
        scale=(512, 512),
        ratio_range=(0.5, 1.0),
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
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
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
