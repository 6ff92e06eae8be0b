# RCA on OAA+ with VGG16-LargeFOV, MS COCO 2014 (the paper's COCO row
# "RCA + OAA+"): oaa/oaa_vgg16_coco.py plus the RCA head and hook, with the
# memory capped at 500 entries per class (paper, COCO).
#   bash tools/dist_train.sh configs/rca/rca_oaa_vgg16_coco.py 4 \
#       --work-dir WORK_DIR
#   python tools/test.py configs/rca/rca_oaa_vgg16_coco.py CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
_base_ = ['../oaa/oaa_vgg16_coco.py']
model = dict(
    head=dict(
        type='RCAHead',
        memory_bank=dict(type='RegionMemoryBank', capacity_per_class=500),
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RCAHook'),  # the bank's size, warm-up, k-means: the head's
]
