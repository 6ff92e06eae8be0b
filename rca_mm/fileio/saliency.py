"""Reading saliency maps: grey PNGs, 0 = background, 255 = salient."""
import numpy as np

from .image import open_checked


def read_saliency_map(path: str) -> np.ndarray:
    """Read a saliency map: a grey 8-bit PNG, 0 = background, 255 = salient.

    A map saved as RGB(A) with equal channels is accepted (its first
    channel); 16-bit maps are scaled from 0..65535.

    Args:
        path (str): the PNG file.

    Returns:
        np.ndarray: ``(H, W)`` float32 in ``[0, 1]``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable or truncated, a colour image, or
            of another PIL mode.
    """
    img = open_checked(path, 'saliency map')
    if img.mode in ('L', 'P'):
        arr = np.asarray(img.convert('L'), dtype=np.float32) / 255.
    elif img.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I'):
        arr = np.asarray(img, dtype=np.float32) / 65535.
    elif img.mode in ('RGB', 'RGBA', 'LA'):
        channels = np.asarray(img.convert('RGB'))
        if not (np.array_equal(channels[..., 0], channels[..., 1])
                and np.array_equal(channels[..., 0], channels[..., 2])):
            raise ValueError(
                f'saliency map {path!r} is a colour ({img.mode}) image; '
                f'saliency maps must be grey PNGs (0..255)')
        arr = channels[..., 0].astype(np.float32) / 255.
    else:
        raise ValueError(f'saliency map {path!r} has PIL mode {img.mode}; '
                         f'expected a grey 8-bit PNG')
    return np.clip(arr, 0., 1.)
