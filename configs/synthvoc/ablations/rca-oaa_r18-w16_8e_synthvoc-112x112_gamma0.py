# RCA ablation on OAA+ (paper Sec. 4.2): memory momentum gamma of Eq. 3 = 0
# (paper: 0.99, the parent config).
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(head=dict(memory_bank=dict(type='RegionMemoryBank', momentum=0)))
