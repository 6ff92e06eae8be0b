# RCA ablation (paper Sec. 4.2): memory momentum gamma of Eq. 3 = 0.999
# (paper: 0.99, the parent config).
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(memory_bank=dict(momentum=0.999)))
