# RCA ablation (paper Sec. 4.2): no clustering, every written memory entry is
# a prototype (K = "all"; paper: 10, the parent config). custom_hooks is a
# list, so it is restated whole.
_base_ = ['../rca_oaa_vgg16_voc.py']
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RegionMemoryHook', num_prototypes=None),
    dict(type='RSCWarmupHook', warmup_epochs=1),
]
