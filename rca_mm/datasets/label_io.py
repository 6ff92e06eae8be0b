"""Reading and writing label maps, saliency maps and list files, checked.

Every reader here names the file and says what is wrong with it, so that a
bad file in a dataset of 10,000 is found from the message alone. Every writer
is atomic (a temporary file in the same directory, then ``os.replace``), so a
converter that is interrupted leaves either the whole file or none, and a
re-run can skip what exists.
"""
import io
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from rca_mm.testing.voc_layout import voc_palette
from rca_mm.utils.fileio import atomic_open

#: PIL modes of 8-bit, one-channel images: palette indices or grey levels.
_INDEX_MODES = ('P', 'L')
#: PIL modes of 16/32-bit one-channel images.
_WIDE_MODES = ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')


def _open_checked(path: str, what: str) -> Image.Image:
    """Open and fully decode ``path``; a missing, unreadable or truncated
    file raises with the file's name."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist')
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'{what} {path!r} cannot be decoded: the file is '
                         f'unreadable or truncated ({e})') from e
    return img


#: PIL modes converted to RGB when read as an image, with their names.
_CONVERTIBLE_MODES = {
    'L': 'grey', 'LA': 'grey + alpha', 'P': 'palette', 'PA': 'palette + alpha',
    'RGBA': 'RGBA', 'RGBX': 'RGBX', 'CMYK': 'CMYK', 'YCbCr': 'YCbCr',
    '1': '1-bit'
}


def read_image(path: str) -> Tuple[np.ndarray, Optional[str]]:
    """Read an 8-bit image as BGR (mmcv's channel order).

    Grey, palette, RGBA, CMYK and 1-bit images are converted to RGB (alpha
    is dropped); EXIF orientation is not applied, so pixels stay aligned
    with label maps drawn on the stored image.

    Args:
        path (str): the image file.

    Returns:
        tuple[np.ndarray, str | None]: ``(H, W, 3)`` uint8 BGR, and a note
        saying what was converted (None for an RGB file).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable or truncated, or a 16/32-bit
            image (its scaling to 8 bits is ambiguous).
    """
    img = _open_checked(path, 'image')
    note = None
    if img.mode in _WIDE_MODES:
        raise ValueError(
            f'image {path!r} is a {img.mode} (16/32-bit) image; rca_mm reads '
            f'8-bit RGB images. Convert it to 8 bits first')
    if img.mode != 'RGB':
        if img.mode not in _CONVERTIBLE_MODES:
            raise ValueError(f'image {path!r} has the unsupported PIL mode '
                             f'{img.mode}')
        note = (f'{path!r} is a {_CONVERTIBLE_MODES[img.mode]} image; '
                f'converted to RGB')
        img = img.convert('RGB')
    return np.ascontiguousarray(np.asarray(img)[..., ::-1]), note


def _open_label_map(path: str) -> Image.Image:
    """Open a label map and check it is an 8-bit index image."""
    img = _open_checked(path, 'label map')
    if img.mode in _INDEX_MODES:
        return img
    if img.mode in _WIDE_MODES:
        raise ValueError(
            f'label map {path!r} is a {img.mode} (16/32-bit) image; label '
            f'maps must be 8-bit palette or grey PNGs with values 0..C-1 and '
            f'255 = ignore. Convert it, e.g. with '
            f'Image.fromarray(arr.astype(np.uint8)).save(...) after checking '
            f'its values are below 256')
    raise ValueError(
        f'label map {path!r} is a colour ({img.mode}) image; label maps must '
        f'be palette or grey PNGs whose pixel values are class indices. '
        f'Convert colour-coded VOC masks with '
        f'tools/dataset_converters/voc_aug.py')


def read_label_map(path: str) -> np.ndarray:
    """Read a label map: a palette or grey 8-bit PNG of class indices.

    Args:
        path (str): the PNG file.

    Returns:
        np.ndarray: ``(H, W)`` uint8, 0 = background, 255 = ignore.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated or unreadable, is 16/32-bit (a
            wide integer map would be silently wrapped to 8 bits), or is a
            colour (RGB/RGBA) image rather than an index map.
    """
    return np.asarray(_open_label_map(path), dtype=np.uint8)


def label_map_classes(path: str, num_classes: int,
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
            dataset nor ``ignore_index`` (or any error of
            :func:`read_label_map`).
    """
    # the histogram of a P/L image counts raw indices, not palette colours
    present = np.flatnonzero(_open_label_map(path).histogram())
    bad = [int(v) for v in present if v >= num_classes and v != ignore_index]
    if bad:
        raise ValueError(
            f'label map {path!r} holds class ids {bad}, outside the '
            f'dataset\'s {num_classes} classes (0..{num_classes - 1}, '
            f'{ignore_index} = ignore): the mask belongs to another dataset '
            f'or the dataset\'s `metainfo.classes` is too short')
    return [int(v) - 1 for v in present if 0 < v < num_classes]


def read_saliency_map(path: str) -> np.ndarray:
    """Read a saliency map: a grey 8-bit PNG, 0 = background, 255 = salient.

    A map saved as RGB(A) with equal channels is accepted (its first
    channel); 16-bit maps are scaled from 0..65535.

    Returns:
        np.ndarray: ``(H, W)`` float32 in ``[0, 1]``.
    """
    img = _open_checked(path, 'saliency map')
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


def read_list_file(path: str, what: str = 'image list') -> List[str]:
    """Read a list of image stems, one per line (blank lines skipped).

    The first whitespace-separated field of each line is used; a path or an
    extension on it is stripped (``JPEGImages/x.jpg`` -> ``x``), so the
    ``/JPEGImages/x.jpg /SegmentationClassAug/x.png`` lists of DeepLab and
    PSA also work.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file lists no image, or lists one twice.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist')
    with open(path) as f:
        names = [stem_of(line.split()[0]) for line in f if line.strip()]
    if not names:
        raise ValueError(f'{what} {path!r} is empty: it must list one image '
                         f'name (file stem) per line')
    seen = set()
    dups = [n for n in names if n in seen or seen.add(n)]
    if dups:
        raise ValueError(f'{what} {path!r} lists {len(dups)} image(s) more '
                         f'than once, e.g. {dups[:5]}')
    return names


def stem_of(token: str) -> str:
    """``'a/b/2007_000032.jpg'`` -> ``'2007_000032'``."""
    return osp.splitext(osp.basename(token))[0]


def read_tag_file(path: str, num_classes: int) -> Dict[str, List[int]]:
    """Read a tag file in the OAA/RCA ``train_cls.txt`` format.

    Each line is ``name c1 c2 ...`` with 0-based foreground class ids; the
    name may carry a path or an extension, which are stripped.

    Args:
        path (str): the tag file.
        num_classes (int): foreground classes ``L``; ids must be in
            ``0..L-1``.

    Returns:
        dict[str, list[int]]: sorted, de-duplicated tags per image stem.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: empty file, a non-integer or unknown class id, or an
            image listed twice; the message names ``path:line``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'tag file (cls_label_file) {path!r} does '
                                f'not exist')
    tags: Dict[str, List[int]] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            name = stem_of(fields[0])
            try:
                ids = sorted({int(v) for v in fields[1:]})
            except ValueError:
                raise ValueError(
                    f'{path}:{lineno}: class ids must be integers, got '
                    f'{fields[1:]} (format: `name c1 c2 ...`, 0-based '
                    f'foreground ids)') from None
            bad = [i for i in ids if not 0 <= i < num_classes]
            if bad:
                raise ValueError(
                    f'{path}:{lineno}: unknown class id(s) {bad} for image '
                    f'{name!r}; the dataset has {num_classes} foreground '
                    f'classes, ids 0..{num_classes - 1} (background is not '
                    f'a tag)')
            if name in tags:
                raise ValueError(f'{path}:{lineno}: image {name!r} is '
                                 f'listed twice')
            tags[name] = ids
    if not tags:
        raise ValueError(f'tag file {path!r} is empty')
    return tags


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    with atomic_open(path, 'wb') as f:
        f.write(data)


def atomic_write_lines(path: str, lines: Iterable[str]) -> None:
    """Write text lines (newline-terminated) atomically."""
    atomic_write_bytes(path, ''.join(f'{ln}\n' for ln in lines).encode())


def save_label_png(mask: np.ndarray,
                   path: str,
                   palette: Optional[np.ndarray] = None) -> None:
    """Write a ``uint8`` label map as a palette PNG, atomically.

    Args:
        mask (np.ndarray): ``(H, W)`` class indices (0..255).
        path (str): the output file.
        palette (np.ndarray, optional): ``(256, 3)`` colours; the VOC colour
            map by default.
    """
    if mask.ndim != 2 or mask.min() < 0 or mask.max() > 255:
        raise ValueError(f'cannot write {path!r}: a label map must be a 2-D '
                         f'array of values 0..255')
    img = Image.fromarray(mask.astype(np.uint8), mode='P')
    img.putpalette((voc_palette() if palette is None else np.asarray(
        palette, np.uint8)).reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    atomic_write_bytes(path, buf.getvalue())


def write_tag_file(path: str, names: Sequence[str],
                   tags: Dict[str, Sequence[int]]) -> None:
    """Write ``name c1 c2 ...`` lines for ``names`` (in that order)."""
    atomic_write_lines(
        path, (' '.join([n] + [str(c) for c in tags[n]]) for n in names))


def list_stems(directory: str, suffix: str) -> Tuple[set, bool]:
    """The file stems with ``suffix`` in ``directory`` (one ``scandir``), and
    whether the directory exists."""
    if not osp.isdir(directory):
        return set(), False
    n = len(suffix)
    with os.scandir(directory) as it:
        return {e.name[:-n] for e in it if e.name.endswith(suffix)}, True
