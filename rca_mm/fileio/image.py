"""Reading images: one reader for the loading transform, the pseudo-label
metric and the dense CRF.

Every error names the file, so that a bad file in a dataset of 10,000 is
found from the message alone.
"""
import os.path as osp
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageOps

#: PIL modes of 16/32-bit one-channel images.
WIDE_MODES = ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')

#: PIL modes converted to RGB when read as an image, with their names.
_CONVERTIBLE_MODES = {
    'L': 'grey',
    'LA': 'grey + alpha',
    'P': 'palette',
    'PA': 'palette + alpha',
    'RGBA': 'RGBA',
    'RGBX': 'RGBX',
    'CMYK': 'CMYK',
    'YCbCr': 'YCbCr',
    '1': '1-bit'
}
_CHANNEL_ORDERS = ('bgr', 'rgb')


def open_checked(path: str, what: str) -> Image.Image:
    """Open and fully decode ``path``.

    Args:
        path (str): the file.
        what (str): what the file is (``'image'``, ``'label map'``, ...),
            the start of every error message.

    Returns:
        PIL.Image.Image: the decoded image.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable or truncated.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist')
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'{what} {path!r} cannot be decoded: the file is '
                         f'unreadable or truncated ({e})') from e
    return img


def read_image(
        path: str,
        channel_order: str = 'bgr',
        exif_orientation: bool = False) -> Tuple[np.ndarray, Optional[str]]:
    """Read an 8-bit image as BGR (mmcv's channel order) or RGB.

    Grey, palette, RGBA, CMYK and 1-bit images are converted to RGB (alpha
    is dropped).

    Args:
        path (str): the image file.
        channel_order (str): ``'bgr'`` or ``'rgb'``. Default: 'bgr'.
        exif_orientation (bool): rotate the pixels as the file's EXIF
            orientation says, as mmcv's readers do. The WSSS loading
            transform leaves it off, so that pixels stay aligned with label
            maps drawn on the stored image. Default: False.

    Returns:
        tuple[np.ndarray, str | None]: ``(H, W, 3)`` uint8, C-contiguous
        and writable, and a note saying what was converted (None for an
        RGB file).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable or truncated, or a 16/32-bit
            image (its scaling to 8 bits is ambiguous).
    """
    if channel_order not in _CHANNEL_ORDERS:
        raise ValueError(f'read_image({path!r}): channel_order must be one '
                         f'of {_CHANNEL_ORDERS}, got {channel_order!r}')
    img = open_checked(path, 'image')
    note = None
    if img.mode in WIDE_MODES:
        raise ValueError(
            f'image {path!r} is a {img.mode} (16/32-bit) image; rca_mm reads '
            f'8-bit RGB images. Convert it to 8 bits first')
    if exif_orientation:
        img = ImageOps.exif_transpose(img)
    if img.mode != 'RGB':
        if img.mode not in _CONVERTIBLE_MODES:
            raise ValueError(f'image {path!r} has the unsupported PIL mode '
                             f'{img.mode}')
        note = (f'{path!r} is a {_CONVERTIBLE_MODES[img.mode]} image; '
                f'converted to RGB')
        img = img.convert('RGB')
    if channel_order == 'rgb':
        return np.array(img), note  # a writable copy, as for 'bgr'
    return np.ascontiguousarray(np.asarray(img)[..., ::-1]), note
