# SynthNet (docs/synthnet.md), SynthVOC's ImageNet: 112x112 single-object
# images of 100 classes in the layout of mmpretrain's CustomDataset, written
# by `python tools/dataset_converters/synthnet.py --out data/synthnet`.
# ImageNet's recipe scaled to the image size: a random-resized crop of 96
# (35-100 % of the image, so objects appear at SynthVOC's scales), flip;
# validation resizes to 96.
# Redirect with --cfg-options train_dataloader.dataset.data_root=DIR (and
# val/test).
dataset_type = 'mmpretrain.CustomDataset'
data_root = 'data/synthnet'
num_classes = 100
crop_size = 96
train_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=crop_size,
        crop_ratio_range=(0.35, 1.0)),
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs')
]
test_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=crop_size, edge='short'),
    dict(type='mmpretrain.PackInputs')
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    # Batches copied to the GPU while the step runs (unpinned without
    # an accelerator: rca_mm.engine.runner_builder).
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        ann_file='meta/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        ann_file='meta/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
