# RCA (Zhou et al., CVPR 2022) on OAA+/OAA++ with VGG16-LargeFOV, PASCAL VOC
# 2012: the paper's row "RCA + OAA++ (VGG16)", 71.4 pseudo-label mIoU
# on `train` (mIoU_confident; with OAA++'s saliency maps).
# The baseline (oaa/oaa_vgg16_voc.py) plus the RCA head and its hook:
# region memory bank (Eq. 3; one entry per (image, class), gamma 0.99),
# regional semantic contrast with region mixup (Eq. 4-6, alpha_1 0.01 after
# one warm-up epoch), K = 10 k-means prototypes per class aggregated into O
# (Eq. 7-10); the OAA hook accumulates O. Every value is the paper's
# (docs/rca.md). The ablations of Sec. 4.2 inherit this file
# (configs/rca/ablations/).
#   bash tools/dist_train.sh configs/rca/rca_oaa_vgg16_voc.py 4 \
#       --work-dir WORK_DIR
#   python tools/test.py configs/rca/rca_oaa_vgg16_voc.py CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
_base_ = ['../oaa/oaa_vgg16_voc.py']
model = dict(
    head=dict(
        type='RCAHead',
        memory_bank=dict(
            type='RegionMemoryBank', momentum=0.99, capacity_per_class=None),
        contrast_loss=dict(
            type='RegionContrastLoss', loss_weight=0.01, use_mixup=True),
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [
    dict(type='OAAAccumulationHook', start_epoch=1),
    dict(type='RCAHook'),  # the bank's size, warm-up, k-means: the head's
]
