# RCA on EPS with VGG16-LargeFOV, MS COCO 2014 (the paper's COCO row
# "RCA + EPS"): eps/eps_vgg16_coco.py plus the RCA head and hook, with the
# memory capped at 500 entries per class (paper, COCO).
#   bash tools/dist_train.sh configs/rca/rca_eps_vgg16_coco.py 4
#   python tools/test.py configs/rca/rca_eps_vgg16_coco.py CKPT --out DIR
_base_ = ['../eps/eps_vgg16_coco.py']
model = dict(
    head=dict(
        type='RCAHead',
        memory_bank=dict(type='RegionMemoryBank', capacity_per_class=500),
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [dict(type='RCAHook')]  # bank size, warm-up, k-means
