"""Backbones: VGG16-LargeFOV, WideResNet-38 and the strict-loading ResNet."""
from .strict_resnet import StrictResNet  # noqa: F401
from .vgg16_largefov import VGG16LargeFOV  # noqa: F401
from .wide_resnet38 import WideResNet38  # noqa: F401
