# MS COCO 2014 for the stage-1 classifier (image-level tags): train on the
# 82,081 `train2014` images with at least one object, validate the
# multi-label mAP on the 40,137 such `val2014` images, export CAMs on train.
# Layout: tools/dataset_converters/coco2014.py, docs/datasets.md. Redirect
# with --cfg-options train_dataloader.dataset.data_root=DIR (and val/test).
#
# Augmentation as halbielee/EPS on COCO (script/coco_eps.sh:
# --resize_size 256 448 --crop_size 321): long side uniformly 256..448,
# colour jitter, flip, crop 321 padded (image 0, labels 255, saliency 0).
dataset_type = 'WSSSCOCODataset'
data_root = 'data/coco2014'
num_classes = 80
crop_size = (321, 321)
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadSaliencyMap', optional=True),
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
test_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='LoadSaliencyMap', optional=True),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    # Batches copied to the GPU while the step runs (unpinned without
    # an accelerator: rca_mm.engine.runner_builder).
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train2014',
            seg_map_path='SegmentationClass/train2014',
            sal_path='SaliencyMaps/train2014'),
        ann_file='ImageSets/train.txt',
        cls_label_file='ImageSets/train_cls.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val2014',
            seg_map_path='SegmentationClass/val2014',
            sal_path='SaliencyMaps/val2014'),
        ann_file='ImageSets/val.txt',
        cls_label_file='ImageSets/val_cls.txt',
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train2014',
            seg_map_path='SegmentationClass/train2014',
            sal_path='SaliencyMaps/train2014'),
        ann_file='ImageSets/train.txt',
        cls_label_file='ImageSets/train_cls.txt',
        pipeline=test_pipeline))
