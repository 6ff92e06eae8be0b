# RCA on OAA+ (SynthVOC): RCA's final maps O are accumulated by the OAA hook;
# pseudo labels from the accumulated maps with the saliency recipe.
_base_ = ['./oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(
    head=dict(
        type='RCAHead',
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RCAHook'),  # the bank's size, warm-up, k-means: the head's
]
