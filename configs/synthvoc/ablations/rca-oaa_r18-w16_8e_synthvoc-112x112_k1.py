# RCA ablation on OAA+ (paper Sec. 4.2): K = 1 prototypes per class (paper:
# 10, the parent config).
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(aggregation=dict(num_prototypes=1)))
