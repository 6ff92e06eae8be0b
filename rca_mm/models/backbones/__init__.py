"""Classification backbones: VGG16-LargeFOV and WideResNet-38."""
from .vgg16_largefov import VGG16LargeFOV  # noqa: F401
from .wide_resnet38 import WideResNet38  # noqa: F401
