# EPS (Lee et al., CVPR 2021) on SynthVOC: L+1 maps and the saliency loss on
# SynthVOC's saliency maps; pseudo labels with the background from the
# classifier's own background map.
_base_ = ['./cam_r18-w16_8e_synthvoc-112x112.py']
model = dict(
    head=dict(
        with_background=True, saliency_loss=dict(type='EPSSaliencyLoss')),
    test_cfg=dict(
        pseudo_label=dict(_delete_=True, type='BackgroundMapRecipe')))
