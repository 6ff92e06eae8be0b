"""Tensors and arrays as numpy arrays, for the code that writes or draws
them."""
import numpy as np
import torch


def to_numpy(value) -> np.ndarray:
    """A tensor (any device, detached) or an array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
