# RCA ablation (paper Sec. 4.2): regional semantic aggregation only,
# no contrast loss. The bank is still written (the prototypes come from it);
# the warm-up then has nothing to switch.
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(use_rsc=False))
