"""Losses: regional semantic contrast with mixup (Eq. 4-6), EPS saliency
loss."""
from .eps_saliency_loss import EPSSaliencyLoss
from .region_contrast_loss import RegionContrastLoss

__all__ = ['EPSSaliencyLoss', 'RegionContrastLoss']
