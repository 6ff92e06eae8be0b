"""Losses: regional semantic contrast with mixup (Eq. 4-6), EPS saliency loss."""
