# RCA ablation on OAA+ (paper Table 1, "w/ RSC"): regional semantic contrast
# only, no aggregation; the final CAMs are P, trained with the full
# classification loss.
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(use_rsa=False, loss_weight=1.0))
