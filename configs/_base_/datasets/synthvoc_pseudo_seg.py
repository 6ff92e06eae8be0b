# Stage 2 on SynthVOC (docs/synthvoc.md; 128x128 images, VOC layout written by
# tools/dataset_converters/synthvoc.py): train on the pseudo labels of
# train_aug, validate and test on the real labels of val.
# The pseudo-label directory, absolute or relative to data_root:
#   --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
# The dataset is stage 1's with with_tags=False (label maps, no image tags);
# LoadWSSSAnnotations checks each label's size and values against the image
# and the classes.
# Classes: SYNTHVOC_CLASSES, or <data_root>/classes.txt when it exists.
dataset_type = 'SynthVOCDataset'
data_root = 'data/synthvoc'
crop_size = (112, 112)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(
        type='RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.25),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    # Batches copied to the GPU while the step runs (unpinned without
    # an accelerator: rca_mm.engine.runner_builder).
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        with_tags=False,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='pseudo_labels'),
        ann_file='ImageSets/Segmentation/train_aug.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        with_tags=False,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        ann_file='ImageSets/Segmentation/val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
