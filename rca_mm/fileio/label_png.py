"""Label PNGs: the one writer and the one reader of label maps.

A label map is an 8-bit palette PNG of class indices, 0 = background, 1..C =
classes, 255 = ignore, coloured with the VOC colour map
(:func:`~rca_mm.fileio.palette.voc_palette`). Stage 1 writes its pseudo labels
with :func:`save_label_png` (``PseudoLabelWriter``, ``tools/test.py --out``),
the dataset converters their ground truth; the loading transform
``LoadWSSSAnnotations`` of both stages and the threshold sweep read them with
:func:`read_label_png`. :func:`check_label_values` is the one check of a map's
values against the dataset's classes.

Every write is atomic (:func:`~rca_mm.fileio.atomic.atomic_write`): an
interrupted writer leaves the whole file or none.
"""
from typing import List, Optional

import numpy as np
from PIL import Image

from .atomic import atomic_write
from .image import WIDE_MODES, open_checked
from .palette import voc_palette

#: PIL modes of 8-bit, one-channel images: palette indices or grey levels.
_INDEX_MODES = ('P', 'L')


def save_label_png(mask: np.ndarray,
                   path: str,
                   palette: Optional[np.ndarray] = None) -> None:
    """Write a label map as a palette PNG, atomically.

    Args:
        mask (np.ndarray): ``(H, W)`` class indices (0..255).
        path (str): the output file; its directory is created.
        palette (np.ndarray, optional): ``(256, 3)`` colours. Default: None
            (the VOC colour map).

    Raises:
        ValueError: ``mask`` is not 2-D or holds values outside 0..255.
        OSError: writing failed; the error names ``path``.
    """
    if mask.ndim != 2 or mask.min() < 0 or mask.max() > 255:
        raise ValueError(f'cannot write {path!r}: a label map must be a 2-D '
                         f'array of values 0..255')
    img = Image.fromarray(mask.astype(np.uint8), mode='P')
    img.putpalette((voc_palette() if palette is None else np.asarray(
        palette, np.uint8)).reshape(-1).tolist())
    atomic_write(path, lambda tmp: img.save(tmp, format='PNG'))


def _open_label_map(path: str) -> Image.Image:
    """Open a label map and check it is an 8-bit index image."""
    img = open_checked(path, 'label map')
    if img.mode in _INDEX_MODES:
        return img
    if img.mode in WIDE_MODES:
        raise ValueError(
            f'label map {path!r} is a {img.mode} (16/32-bit) image; label '
            f'maps must be 8-bit palette or grey PNGs with values 0..C-1 and '
            f'255 = ignore. Convert it, e.g. with '
            f'Image.fromarray(arr.astype(np.uint8)).save(...) after checking '
            f'its values are below 256')
    raise ValueError(
        f'label map {path!r} is a colour image (mode {img.mode}); label maps '
        f"must be palette ('P') or grey ('L') PNGs whose pixel values are "
        f'class indices. Convert colour-coded VOC masks with '
        f'tools/dataset_converters/voc_aug.py (read_voc_label_png)')


def read_label_png(path: str) -> np.ndarray:
    """Read a label map: a palette or grey 8-bit PNG of class indices.

    The pixel values are returned, not the palette's colours.

    Args:
        path (str): the PNG file.

    Returns:
        np.ndarray: ``(H, W)`` uint8 (writable), 0 = background,
        255 = ignore.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated or unreadable, is 16/32-bit (a
            wide integer map would be silently wrapped to 8 bits), or is a
            colour (RGB/RGBA) image rather than an index map.
    """
    return np.array(_open_label_map(path), dtype=np.uint8)


def read_voc_label_png(path: str) -> np.ndarray:
    """A VOC ``SegmentationClass`` PNG as class indices: a palette or grey
    PNG as :func:`read_label_png` reads it, or a colour image coded with
    the VOC colour map (every colour must be one of its entries).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable, or holds a colour that is not
            in the VOC colour map.
    """
    img = open_checked(path, 'label map')
    if img.mode in _INDEX_MODES:
        return np.array(img, dtype=np.uint8)
    rgb = np.asarray(img.convert('RGB')).astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    palette = voc_palette().astype(np.int64)
    lut = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(palette)}
    out = np.zeros(codes.shape, np.uint8)
    for code in np.unique(codes):
        if int(code) not in lut:
            raise ValueError(f'{path!r} holds the colour '
                             f'{(code >> 16, (code >> 8) & 255, code & 255)}'
                             f', which is not in the VOC colour map')
        out[codes == code] = lut[int(code)]
    return out


def check_label_values(path: str,
                       values: np.ndarray,
                       num_classes: int,
                       ignore_index: int = 255) -> None:
    """Raise if a label map holds a value that is neither a class of the
    dataset nor ``ignore_index``.

    Args:
        path (str): the map's file, named in the error.
        values (np.ndarray): the distinct values present in the map.
        num_classes (int): classes including background; valid values are
            ``0..num_classes-1`` and ``ignore_index``.
        ignore_index (int): the ignore value. Default: 255.

    Raises:
        ValueError: the values outside the classes, with the file.
    """
    bad = [int(v) for v in values if v >= num_classes and v != ignore_index]
    if bad:
        raise ValueError(
            f'label map {path!r} holds value(s) {bad}, which are neither '
            f'classes of the dataset (0..{num_classes - 1}) nor ignore '
            f'({ignore_index}): the map belongs to another dataset or the '
            f'dataset\'s `metainfo.classes` is too short')


def label_map_classes(path: str,
                      num_classes: int,
                      ignore_index: int = 255) -> List[int]:
    """The 0-based foreground tags of a label map: classes present other
    than background (0) and ``ignore_index``.

    Only PIL's 256-bin histogram of the decoded map is computed (about
    1 ms per VOC mask, most of it PNG decoding).

    Args:
        path (str): the PNG file.
        num_classes (int): classes including background; valid values are
            ``0..num_classes-1`` and ``ignore_index``.
        ignore_index (int): the ignore value. Default: 255.

    Returns:
        list[int]: sorted tags ``c - 1`` for every class ``c >= 1`` present.

    Raises:
        ValueError: the map holds a value that is neither a class of the
            dataset nor ``ignore_index`` (:func:`check_label_values`), or
            any error of :func:`read_label_png`.
    """
    # the histogram of a P/L image counts raw indices, not palette colours
    present = np.flatnonzero(_open_label_map(path).histogram())
    check_label_values(path, present, num_classes, ignore_index)
    return [int(v) - 1 for v in present if 0 < v < num_classes]
