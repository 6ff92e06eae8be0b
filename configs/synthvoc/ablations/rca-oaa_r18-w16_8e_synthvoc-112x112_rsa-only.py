# RCA ablation on OAA+ (paper Table 1, "w/ RSA"): semantic aggregation only,
# no contrast loss.
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(use_rsc=False))
