# RCA on OAA+ (SynthVOC): RCA's final maps O are accumulated by the OAA hook;
# pseudo labels from the accumulated maps with the saliency recipe.
_base_ = ['./oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(type='RCAHead'))
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RegionMemoryHook', num_prototypes=10),
    dict(type='RSCWarmupHook', warmup_epochs=1),
]
