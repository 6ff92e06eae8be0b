# SynthVOC's "ImageNet pretraining": the backbone of every SynthVOC stage
# (mmpretrain's ResNet-18 at width 16, output stride 8, as in
# configs/_base_/models/cam_r18-w16.py) trained to classify SynthNet's 100
# classes with mmpretrain's ImageClassifier: global average pooling and a
# linear layer, cross-entropy. docs/synthnet.md has the design and the
# measured top-1.
#   python tools/dataset_converters/synthnet.py --out data/synthnet
#   python tools/train.py configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py
#   python tools/model_converters/publish_model.py --no-sha \
#       work_dirs/resnet18-w16-d8_6e_synthnet-96x96/epoch_6.pth \
#       data/pretrained/resnet18-w16-d8_synthnet.pth
# (tools/run_synthvoc.sh does all three once and reuses the file.)
_base_ = [
    '../_base_/datasets/synthnet_cls.py', '../_base_/cls_runtime.py',
    '../_base_/schedules/schedule_cls_30e.py'
]
max_epochs = 6
model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        num_classes={{_base_.num_classes}},
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='mmpretrain.ResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, )),
    neck=dict(type='mmpretrain.GlobalAveragePooling'),
    head=dict(
        type='mmpretrain.LinearClsHead',
        num_classes={{_base_.num_classes}},
        in_channels=128,
        loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0)))
# SGD with the SynthVOC classifiers' from-scratch lr and weight decay, and
# cosine decay, for every layer.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4),
    _delete_=True)
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
# One process of 64 images (the dataset config's batch), kept in total on
# any number of processes.
auto_scale_lr = dict(base_batch_size=64)
# Top-1/top-5 of the single label on val.
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
# mmpretrain's visualizer and its visualization hook (mmseg's hook drives
# only mmseg's visualizer).
default_hooks = dict(
    logger=dict(interval=25),
    visualization=dict(type='mmpretrain.VisualizationHook', _delete_=True))
visualizer = dict(
    type='mmpretrain.UniversalVisualizer',
    _delete_=True,
    vis_backends={{_base_.vis_backends}})
randomness = dict(seed=0)
