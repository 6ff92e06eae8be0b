# PASCAL VOC 2012 + SBD for the stage-1 classifier (image-level tags).
# Train on `train_aug` (10,582 images), validate the multi-label mAP on `val`
# (1,449), export CAMs on `train_aug` (test_dataloader). Layout and converter:
# docs/datasets.md. Redirect with
#   --cfg-options train_dataloader.dataset.data_root=DIR
# (and val_dataloader./test_dataloader. the same).
#
# Augmentation (halbielee/EPS, module/dataloader.py and main.py, which follow
# PSA): long side resized uniformly to 256..512, colour jitter (0.3, 0.3,
# 0.3, 0.1), horizontal flip, random crop; EPS crops 448 on VOC, here 321,
# the RCA paper's crop (and EPS's on COCO). Smaller images are padded:
# image 0, label map 255, saliency 0 (PadToSize).
dataset_type = 'WSSSVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
num_classes = 20
crop_size = (321, 321)
data_prefix = dict(
    img_path='JPEGImages',
    seg_map_path='SegmentationClassAug',
    sal_path='SaliencyMaps')
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='LoadSaliencyMap', optional=True),
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
# CAM export and validation: full-size images, the classifier does its own
# multi-scale + flip inference.
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
        data_prefix=data_prefix,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        cls_label_file=None,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
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
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        cls_label_file=None,
        pipeline=test_pipeline))
