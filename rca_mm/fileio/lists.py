"""Image lists and tag files: one image stem a line, checked.

.. code:: text

    ImageSets/Segmentation/train.txt       <name> (or a path, or the
                                           ``/JPEGImages/x.jpg /Seg.../x.png``
                                           lines of DeepLab and PSA)
    ImageSets/Segmentation/train_cls.txt   <name> c1 c2 ...  (0-based
                                           foreground class ids)

Every reader names the file (and the line) and says what is wrong with it;
every writer is atomic.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from .atomic import atomic_write_lines


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


def write_tag_file(path: str, names: Sequence[str],
                   tags: Dict[str, Sequence[int]]) -> None:
    """Write ``name c1 c2 ...`` lines for ``names`` (in that order)."""
    atomic_write_lines(path, (' '.join([n] + [str(c) for c in tags[n]])
                              for n in names))


def list_stems(directory: str, suffix: str) -> Tuple[set, bool]:
    """The file stems with ``suffix`` in ``directory`` (one ``scandir``), and
    whether the directory exists."""
    if not osp.isdir(directory):
        return set(), False
    n = len(suffix)
    with os.scandir(directory) as it:
        return {e.name[:-n] for e in it if e.name.endswith(suffix)}, True


def find_image_list(list_file: str, img_path: str) -> Optional[str]:
    """Resolve a list file named in a config.

    Args:
        list_file (str): absolute, or relative to the working directory, or
            to a parent directory of the images (the dataset root, whatever
            ``data_root`` the config was given).
        img_path (str): the path of one of the images.

    Returns:
        str, optional: ``list_file`` as given if it exists, else under the
        nearest parent directory of ``img_path`` that holds it; None when
        neither has it.
    """
    candidates = [list_file]
    if not osp.isabs(list_file):
        parent = osp.dirname(osp.abspath(img_path))
        while True:
            candidates.append(osp.join(parent, list_file))
            if osp.dirname(parent) == parent:
                break
            parent = osp.dirname(parent)
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    return None
