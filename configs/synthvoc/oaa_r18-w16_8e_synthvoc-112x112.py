# OAA+ (Jiang et al., ICCV 2019) on SynthVOC: whole images (no crop, so the
# class maps align with the image), the maps of every epoch accumulated by
# element-wise maximum, pseudo labels from the accumulated maps with the
# saliency recipe. Export with
#   python tools/test.py CONFIG CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
_base_ = ['./cam_r18-w16_8e_synthvoc-112x112.py']
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    test_cfg=dict(pseudo_label=dict(_delete_=True, type='SaliencyRecipe')))
train_pipeline = [
    dict(type='LoadWSSSImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(
        type='mmpretrain.ColorJitter',
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        hue=0.1),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='OAAAccumulationHook', start_epoch=1)]
