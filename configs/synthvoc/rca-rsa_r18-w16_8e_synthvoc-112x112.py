# RCA ablation (paper Sec. 4.2): regional semantic aggregation only, no
# contrast loss (the bank is still filled, for the prototypes; RCAHook's
# warm-up then has nothing to switch).
_base_ = ['./rca_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(use_rsc=False))
