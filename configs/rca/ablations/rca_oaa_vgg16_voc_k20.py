# RCA ablation (paper Sec. 4.2): K = 20 prototypes per class (k-means; paper:
# 10, the parent config).
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(aggregation=dict(num_prototypes=20)))
