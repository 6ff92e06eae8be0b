"""Classification backbones: VGG16-LargeFOV and WideResNet-38."""
