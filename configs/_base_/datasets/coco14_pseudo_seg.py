# Stage 2 on MS COCO 2014 (80 classes + background): train on the pseudo
# labels of train2014, validate and test on the real labels of val2014
# (~40k images). Layout of tools/dataset_converters/coco2014.py:
#   data/coco2014/images/{train2014,val2014}/<name>.jpg
#   data/coco2014/SegmentationClass/{train2014,val2014}/<name>.png
#   data/coco2014/ImageSets/{train,val}.txt
# The pseudo-label directory, absolute or relative to data_root:
#   --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
# The dataset is stage 1's with with_tags=False (label maps, no image tags);
# LoadWSSSAnnotations checks each label's size and values against the image
# and the classes.
# Augmentation: deeplab-pytorch's COCO-Stuff recipe
# (configs/cocostuff164k.yaml): random scale 0.5-1.5 (COCO images have a
# 640-pixel long side), crop 321, horizontal flip.
dataset_type = 'WSSSCOCODataset'
data_root = 'data/coco2014'
crop_size = (321, 321)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadWSSSAnnotations'),
    dict(
        type='RandomResize',
        scale=(640, 640),
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
        data_prefix=dict(
            img_path='images/train2014', seg_map_path='pseudo_labels'),
        ann_file='ImageSets/train.txt',
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
            img_path='images/val2014',
            seg_map_path='SegmentationClass/val2014'),
        ann_file='ImageSets/val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
