# OAA+ (Jiang et al., ICCV 2019) on PASCAL VOC 2012 with VGG16-LargeFOV: the
# class maps of every training step are accumulated per image by element-wise
# maximum (OAAAccumulationHook) and the accumulated maps become the CAMs.
# OAA++ is the same training with other saliency maps (a data choice).
#
# Input: whole images squashed to 256x256, colour jitter, no crop and no
# flip (PengtaoJiang/OAA-PyTorch train.sh --input_size=256; the accumulated
# maps must cover the whole image, so there is no random crop). Accumulation
# from the second epoch on (OAA's released models/vgg.py, as recorded in
# OAAAccumulationHook). Schedule: the RCA paper's (schedule_cls_30e.py;
# OAA-PyTorch itself trains 15 epochs, batch 5, lr 1e-3, x0.1 at epochs 5
# and 10).
#   bash tools/dist_train.sh configs/oaa/oaa_vgg16_voc.py 4 --work-dir WORK_DIR
#   python tools/test.py configs/oaa/oaa_vgg16_voc.py CKPT --out DIR \
#       --cfg-options model.test_cfg.oaa_store=WORK_DIR/oaa_store
# Without `oaa_store` the test takes the oaa_store beside CKPT, else stops
# with an error naming the option (never the network's own CAMs).
_base_ = ['../cam/cam_vgg16_voc.py']
crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # Pseudo labels as the RCA label script (maeve07/RCA gen_labels.py): PSA's
    # dense CRF (alpha 4) on the accumulated maps, then the saliency recipe
    # (background 1 - saliency, conflict 0.9, background below saliency
    # 32/255, images under 1% foreground ignored). OAA's own gen_gt.py also
    # drops CAM values below 0.3:
    # --cfg-options model.test_cfg.pseudo_label.cam_floor=0.3.
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
