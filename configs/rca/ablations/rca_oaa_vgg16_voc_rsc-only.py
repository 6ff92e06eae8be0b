# RCA ablation (paper Sec. 4.2): regional semantic contrast only.
# No aggregation: the final CAMs are P, trained with the full
# classification loss (alpha_2 = 1 when P is the only classifier).
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(use_rsa=False, loss_weight=1.0))
