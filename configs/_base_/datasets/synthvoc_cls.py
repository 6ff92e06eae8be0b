# SynthVOC (docs/synthvoc.md) for the stage-1 classifier: 128x128 images in
# the VOC layout under data/synthvoc (python tools/dataset_converters/
# synthvoc.py). Same recipe as voc12_cls.py scaled to the image size: long
# side 96..160 (0.75-1.25 x 128), colour jitter, flip, crop 112 padded.
# Redirect with --cfg-options train_dataloader.dataset.data_root=DIR (and
# val/test). The classes come from data_root/classes.txt when the generator
# wrote one (a --num-classes other than 10); set num_classes to match.
dataset_type = 'SynthVOCDataset'
data_root = 'data/synthvoc'
num_classes = 10
crop_size = (112, 112)
data_prefix = dict(
    img_path='JPEGImages',
    seg_map_path='SegmentationClassAug',
    sal_path='SaliencyMaps')
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadSaliencyMap', optional=True),
    dict(
        type='RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.25),
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
test_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='LoadSaliencyMap', optional=True),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    # Batches copied to the GPU while the step runs (unpinned without
    # an accelerator: rca_mm.engine.runner_builder).
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        cls_label_file=None,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file='ImageSets/Segmentation/val.txt',
        cls_label_file=None,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        cls_label_file=None,
        pipeline=test_pipeline))
