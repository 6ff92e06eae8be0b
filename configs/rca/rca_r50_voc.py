# RCA on a new baseline by inheritance alone: the CAM baseline with
# mmpretrain's ResNet-50 at output stride 8 (cam/cam_r50_voc.py) plus the RCA
# head and hook; F is the 2048-channel backbone map. Pseudo labels as the
# baseline (threshold 0.2). See docs/new_baseline.md.
#   bash tools/dist_train.sh configs/rca/rca_r50_voc.py 4
#   python tools/test.py configs/rca/rca_r50_voc.py CKPT --out DIR
_base_ = ['../cam/cam_r50_voc.py']
model = dict(
    head=dict(
        type='RCAHead',
        aggregation=dict(type='PrototypeAggregation', num_prototypes=10)))
custom_hooks = [dict(type='RCAHook')]  # bank size, warm-up, k-means
