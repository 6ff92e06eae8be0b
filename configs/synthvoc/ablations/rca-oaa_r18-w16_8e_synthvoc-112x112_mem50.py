# RCA ablation on OAA+ (paper Sec. 4.2): memory size capped at 50 entries per
# class (the parent config keeps "all", one entry per (image, class) pair,
# about 200-600 per class on SynthVOC); a full class evicts its least
# recently updated entry.
_base_ = ['../rca-oaa_r18-w16_8e_synthvoc-112x112.py']
model = dict(
    head=dict(
        memory_bank=dict(type='RegionMemoryBank', capacity_per_class=50)))
