# A small FCN for smoke runs on CPU: mmseg's own FCN base (inherited with the
# `mmseg::` prefix) with an mmpretrain ResNet-18 of width 16 and output
# stride 8 in place of ResNet-50. BN instead of SyncBN so that it also runs on
# CPU.
_base_ = 'mmseg::_base_/models/fcn_r50-d8.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, )),
    decode_head=dict(
        in_channels=128,
        in_index=0,
        channels=32,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=21,
        norm_cfg=norm_cfg),
    auxiliary_head=None)
