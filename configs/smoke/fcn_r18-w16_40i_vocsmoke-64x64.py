# Smoke run of the toolbox on the tiny VOC-layout set written by
#   python -m rca_mm.testing.voc_layout --out data/smoke_voc
# It exercises what every stage config relies on: inheritance of rca_mm's
# _base_ files and of mmseg's own (`mmseg::`), mmseg modules by plain name
# (EncoderDecoder, FCNHead, PascalVOCDataset, IoUMetric), an mmpretrain
# backbone by prefix, and the standard train/test/resume/distributed entry
# points. Trains in about 10 s on 2 CPU cores.
_base_ = [
    '../_base_/models/fcn_r18-w16.py', '../_base_/datasets/voc12_aug_seg.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_20k.py'
]
data_root = 'data/smoke_voc'
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.0)}))
param_scheduler = [
    dict(type='PolyLR', power=0.9, begin=0, end=40, by_epoch=False)
]
train_cfg = dict(max_iters=40, val_interval=40)
auto_scale_lr = dict(base_batch_size=4)  # one process of 4 images
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=20, max_keep_ckpts=3))
randomness = dict(seed=0)
