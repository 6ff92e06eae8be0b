# Runtime settings shared by every rca_mm config.
# `rca_mm` first, then mmseg's registries, then mmengine's; other OpenMMLab
# packages by prefix, e.g. type='mmpretrain.ResNet'.
default_scope = 'rca_mm'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # On a machine without CUDA, tools/train.py starts gloo itself.
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
# SegLocalVisualizer's drawing for segmentors, and for a CAM classifier the
# CAM of each tag, pseudo label, saliency and GT (docs/visualization.md).
visualizer = dict(
    type='WSSSLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# Every process draws its own dropout masks, mixup partners and weights and
# augmentations (torch/numpy/Python seeded with seed + rank; rank 0 keeps
# the seed). The samplers keep the run's seed on every rank, and the RCA
# bank and prototypes stay identical across ranks (docs/reliability.md).
randomness = dict(seed=None, diff_rank_seed=True)

tta_model = dict(type='SegTTAModel')
