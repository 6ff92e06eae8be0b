# Full RCA (Zhou et al., CVPR 2022) on the CAM baseline of SynthVOC: the
# region memory bank (Eq. 3), regional semantic contrast with region mixup
# (Eq. 4-6, after one warm-up epoch) and aggregation of the k-means
# prototypes (Eq. 7-10); the final CAMs are O. Every default of the head is
# the paper's (docs/rca.md).
_base_ = ['./cam_r18-w16_8e_synthvoc-112x112.py']
model = dict(
    head=dict(
        type='RCAHead',
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [dict(type='RCAHook')]  # bank size, warm-up, k-means
