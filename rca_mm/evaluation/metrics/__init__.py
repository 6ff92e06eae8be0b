"""Metrics: pseudo labels from CAMs, both mIoU protocols."""
