# DeepLabV2's VOC recipe (deeplab-pytorch): SGD lr 2.5e-4, momentum 0.9,
# wd 5e-4, poly 0.9, 20k iterations. The x10 head lr is set by the model config
# through `optim_wrapper.paramwise_cfg`.
optimizer = dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
# The recipe's total batch, 10: tools/train.py sets the per-process
# train_dataloader.batch_size to 10 / the number of processes (--auto-scale-lr
# scales the lr instead; docs/get_started.md).
auto_scale_lr = dict(enable=False, base_batch_size=10)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=20000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Atomic writes; `last_checkpoint` always names a complete checkpoint.
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=2000,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    # Exact resume (RNG states in the checkpoint) and a clear stop on a
    # non-finite loss (docs/reliability.md).
    rng_state=dict(type='RNGStateHook'),
    nan_guard=dict(type='NaNGuardHook'))
