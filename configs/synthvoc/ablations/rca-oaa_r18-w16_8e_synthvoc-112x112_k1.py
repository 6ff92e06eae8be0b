# RCA ablation on OAA+ (paper Sec. 4.2): K = 1 prototypes per class (paper:
# 10, the parent config). custom_hooks is a list, so it is restated whole.
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RegionMemoryHook', num_prototypes=1),
    dict(type='RSCWarmupHook', warmup_epochs=1),
]
