# Stage-1 classifier schedule of the RCA paper (Sec. 4.1): SGD, momentum 0.9,
# wd 5e-4, batch 8, lr 1e-3 for the backbone and 1e-2 (x10) for the new layers
# (every parameter under `model.head`), x0.1 every 5 epochs, 30 epochs.
optimizer = dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4)
# The total batch these learning rates are for: tools/train.py sets the
# per-process train_dataloader.batch_size to 8 / the number of processes
# (--auto-scale-lr scales the lr instead; docs/get_started.md).
auto_scale_lr = dict(enable=False, base_batch_size=8)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.0)}))
param_scheduler = [
    dict(
        type='StepLR', step_size=5, gamma=0.1, by_epoch=True, begin=0, end=30)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Atomic writes; `last_checkpoint` always names a complete checkpoint.
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=2,
        save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Draws under tools/test.py --show/--show-dir (docs/visualization.md).
    visualization=dict(type='SegVisualizationHook'),
    # Exact --resume and a stop at the first NaN loss (docs/reliability.md).
    rng_state=dict(type='RNGStateHook'),
    nan_guard=dict(type='NaNGuardHook'))
# Multi-label mAP of the image scores on `val` (mmpretrain's metric).
val_evaluator = dict(type='mmpretrain.AveragePrecision')
