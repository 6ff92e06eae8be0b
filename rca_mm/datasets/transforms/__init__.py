"""Transforms for WSSS: image-level labels, saliency maps, packing."""
