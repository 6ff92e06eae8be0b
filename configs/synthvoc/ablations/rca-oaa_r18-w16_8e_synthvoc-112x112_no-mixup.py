# RCA ablation on OAA+ (paper Sec. 4.2, region mixup): the contrast loss of
# Eq. 4 alone, without the mixup term of Eq. 5-6 (the head's default
# contrast loss, alpha_1 = 0.01, otherwise).
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(
    head=dict(
        contrast_loss=dict(
            type='RegionContrastLoss', loss_weight=0.01, use_mixup=False)))
