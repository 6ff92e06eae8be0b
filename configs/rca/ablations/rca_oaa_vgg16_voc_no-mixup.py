# RCA ablation (paper Sec. 4.2): regional semantic contrast without region
# mixup, i.e. Eq. 4 alone instead of Eq. 5-6.
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(contrast_loss=dict(use_mixup=False)))
