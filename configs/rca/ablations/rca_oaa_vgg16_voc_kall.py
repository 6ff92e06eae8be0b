# RCA ablation (paper Sec. 4.2): no clustering, every written memory entry is
# a prototype (K = "all"; paper: 10, the parent config).
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(aggregation=dict(num_prototypes=None)))
