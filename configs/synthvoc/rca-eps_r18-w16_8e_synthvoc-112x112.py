# RCA on EPS (SynthVOC): both classifiers predict L+1 maps with EPS's
# saliency loss on each (loss_sal_p, loss_sal_o).
_base_ = ['./eps_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(type='RCAHead'))
custom_hooks = [
    dict(type='RegionMemoryHook', num_prototypes=10),
    dict(type='RSCWarmupHook', warmup_epochs=1),
]
