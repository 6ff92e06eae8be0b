# RCA ablation (paper Sec. 4.2): K = 100 prototypes per class (k-means; paper:
# 10, the parent config). custom_hooks is a list, so it is restated whole.
_base_ = ['../rca_oaa_vgg16_voc.py']
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RegionMemoryHook', num_prototypes=100),
    dict(type='RSCWarmupHook', warmup_epochs=1),
]
