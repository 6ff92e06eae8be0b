# Stage 2 on PASCAL VOC 2012: train on the pseudo labels of train_aug (10,582
# images), validate and test on the real labels of val (1,449).
# The pseudo-label directory (one PNG per image, 255 = ignore), absolute or
# relative to data_root:
#   --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
# The dataset is stage 1's with with_tags=False (label maps, no image tags);
# LoadWSSSAnnotations checks each label's size and values against the image
# and the classes.
# Augmentation: deeplab-pytorch's VOC recipe (configs/voc12.yaml): random
# scale 0.5-1.5 of the image (VOC images have a 500-pixel long side, hence
# scale=(500, 500)), crop 321 (padded with ignore by the data preprocessor),
# horizontal flip.
dataset_type = 'WSSSVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (321, 321)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(
        type='RandomResize',
        scale=(500, 500),
        ratio_range=(0.5, 1.5),
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
    batch_size=10,
    num_workers=4,
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
# Images of any size in one batch (CRFEncoderDecoder predicts one by one);
# the batch's CRFs run in parallel in model.test_cfg.crf_workers processes.
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
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
