# The CAM baseline on PASCAL VOC 2012 with mmpretrain's ResNet-50 at output
# stride 8 (configs/_base_/models/cam_r50-d8.py): an example of a backbone
# taken from another OpenMMLab library by config alone. Everything else as
# cam_vgg16_voc.py (the RCA paper's schedule, crop 321, threshold 0.2).
#   bash tools/dist_train.sh configs/cam/cam_r50_voc.py 4
#   python tools/test.py configs/cam/cam_r50_voc.py CKPT --out DIR
_base_ = [
    '../_base_/models/cam_r50-d8.py', '../_base_/datasets/voc12_cls.py',
    '../_base_/cls_runtime.py', '../_base_/schedules/schedule_cls_30e.py'
]
crop_size = {{_base_.crop_size}}
model = dict(
    data_preprocessor=dict(size=crop_size),
    # Threshold 0.2 on the normalised CAMs (EPS infer.py --thr 0.20).
    test_cfg=dict(pseudo_label=dict(type='ThresholdRecipe', bg_threshold=0.2)))
# Batch 8 in total, the RCA paper's (auto_scale_lr.base_batch_size of the
# schedule): 4 processes x 2 images (tools/dist_train.sh CONFIG 4); on
# another number of GPUs tools/train.py sets the per-process batch to keep 8.
train_dataloader = dict(batch_size=2)
# Pseudo labels of train_aug (model.test_cfg.pseudo_label), scored on train.
test_evaluator = dict(
    type='PseudoLabelMetric', score_list='ImageSets/Segmentation/train.txt')
