# RCA on OAA+/OAA++ with WideResNet-38, PASCAL VOC 2012: the paper's
# row "RCA + OAA++ (ResNet38)", 73.2 pseudo-label mIoU on `train`
# (mIoU_confident, OAA++'s saliency maps). oaa/oaa_vgg16_voc.py's R38
# counterpart plus the RCA head and hook (paper defaults, docs/rca.md).
#   bash tools/dist_train.sh configs/rca/rca_oaa_r38_voc.py 4 \
#       --work-dir WORK_DIR
#   python tools/test.py configs/rca/rca_oaa_r38_voc.py CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
_base_ = ['../oaa/oaa_r38_voc.py']
model = dict(
    head=dict(
        type='RCAHead',
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RCAHook'),  # the bank's size, warm-up, k-means: the head's
]
