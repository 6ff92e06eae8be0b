# RCA on EPS (SynthVOC): both classifiers predict L+1 maps with EPS's
# saliency loss on each (loss_sal_p, loss_sal_o).
_base_ = ['./eps_r18-w16_8e_synthvoc-112x112.py']
model = dict(
    head=dict(
        type='RCAHead',
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [dict(type='RCAHook')]  # bank size, warm-up, k-means
