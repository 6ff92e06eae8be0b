# RCA ablation (paper Sec. 4.2): memory size capped at 100 entries per class
# (paper on VOC: "all", one entry per (image, class) pair, the parent
# config); a full class evicts its least recently updated entry.
_base_ = ['../rca_oaa_vgg16_voc.py']
model = dict(head=dict(memory_bank=dict(capacity_per_class=100)))
