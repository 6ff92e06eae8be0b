# RCA on EPS with WideResNet-38, PASCAL VOC 2012: the paper's row
# "RCA + EPS (ResNet38)", 74.1 pseudo-label mIoU on `train`
# (mIoU_confident). eps/eps_r38_voc.py plus the RCA head and hook: P and O
# both predict L+1 maps with EPS's saliency loss on each (loss_sal_p,
# loss_sal_o); pseudo labels as EPS (threshold 0.2).
#   bash tools/dist_train.sh configs/rca/rca_eps_r38_voc.py 4
#   python tools/test.py configs/rca/rca_eps_r38_voc.py CKPT \
#       --out data/pseudo/rca_eps_r38
_base_ = ['../eps/eps_r38_voc.py']
model = dict(
    head=dict(
        type='RCAHead',
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [dict(type='RCAHook')]  # bank size, warm-up, k-means
