# OAA+ on PASCAL VOC 2012 with WideResNet-38: the CAM baseline of
# cam_r38_voc.py with OAA's whole-image input (squashed to 256x256, no crop,
# no flip; OAA-PyTorch train.sh --input_size=256) and online attention
# accumulation from the second epoch. Pseudo labels: saliency recipe after
# PSA's CRF (alpha 4), as the RCA label script. See oaa_vgg16_voc.py.
#   bash tools/dist_train.sh configs/oaa/oaa_r38_voc.py 4 --work-dir WORK_DIR
#   python tools/test.py configs/oaa/oaa_r38_voc.py CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
_base_ = ['../cam/cam_r38_voc.py']
crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    test_cfg=dict(
        pseudo_label=dict(
            _delete_=True,
            type='SaliencyRecipe',
            crf=True,
            crf_cfg=dict(alpha=4))))
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='OAAAccumulationHook', start_epoch=1)]
