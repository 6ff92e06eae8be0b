# OAA+ on MS COCO 2014 (80 classes) with VGG16-LargeFOV, the baseline of the
# RCA paper's COCO row "RCA + OAA+": OAA's whole-image input (256x256, no
# crop, no flip; OAA-PyTorch train.sh --input_size=256), accumulation from
# the second epoch, the RCA paper's schedule. Pseudo labels of train2014 by
# the saliency recipe after PSA's CRF, scored on every listed train2014
# image (ImageSets/train.txt of tools/dataset_converters/coco2014.py).
#   bash tools/dist_train.sh configs/oaa/oaa_vgg16_coco.py 4 \
#       --work-dir WORK_DIR
#   python tools/test.py configs/oaa/oaa_vgg16_coco.py CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
_base_ = [
    '../_base_/models/cam_vgg16-largefov.py',
    '../_base_/datasets/coco14_cls.py', '../_base_/cls_runtime.py',
    '../_base_/schedules/schedule_cls_30e.py'
]
crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    head=dict(num_classes=80),
    test_cfg=dict(
        pseudo_label=dict(
            type='SaliencyRecipe', crf=True, crf_cfg=dict(alpha=4))))
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(
        type='mmpretrain.ColorJitter',
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        hue=0.1),
    dict(type='PackWSSSInputs')
]
# Batch 8 in total (the RCA paper's, auto_scale_lr.base_batch_size of the
# schedule): 4 processes x 2 images.
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='OAAAccumulationHook', start_epoch=1)]
test_evaluator = dict(type='PseudoLabelMetric')
