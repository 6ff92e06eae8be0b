"""mmpretrain's ResNet with strict ``Pretrained`` loading.

The SynthVOC configs use a small ResNet (mmpretrain's ``ResNet`` at width
16) for both stages, started from the SynthNet-pretrained weights the way
the VOC configs start from ImageNet's. mmengine's ``Pretrained``
initializer would load a wrong or missing file with a warning and leave the
backbone random; ``StrictResNet`` refuses it and names the command that
makes the file.
"""
from mmpretrain.models.backbones import ResNet

from rca_mm.registry import MODELS
from .strict_pretrained import StrictPretrainedMixin

SYNTHNET_HOW_TO_GET = (
    'make it with `bash tools/run_synthvoc.sh` (it generates SynthNet and '
    'pretrains once), or by hand: `python tools/dataset_converters/'
    'synthnet.py --out data/synthnet`, `python tools/train.py '
    'configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py` and '
    '`python tools/model_converters/publish_model.py --no-sha '
    'work_dirs/resnet18-w16-d8_6e_synthnet-96x96/epoch_6.pth '
    'data/pretrained/resnet18-w16-d8_synthnet.pth`')


@MODELS.register_module()
class StrictResNet(StrictPretrainedMixin, ResNet):
    """mmpretrain's ``ResNet``; ``init_cfg=dict(type='Pretrained', ...)``
    loads strictly (``StrictPretrainedMixin``).

    Takes every argument of ``mmpretrain.models.ResNet``.
    """

    HOW_TO_GET = SYNTHNET_HOW_TO_GET
