"""Image lists (``ImageSets/Segmentation/train.txt``): finding and reading.

A line's first token is the image, a name or a path; its file stem is the
name. Empty lines are skipped.
"""
import os.path as osp
from typing import List, Optional


def read_image_names(list_file: str) -> List[str]:
    """The image names of a list file, in its order.

    Raises:
        FileNotFoundError: no such file.
    """
    if not osp.isfile(list_file):
        raise FileNotFoundError(f'image list {list_file!r} does not exist')
    with open(list_file) as f:
        return [
            osp.splitext(osp.basename(line.split()[0]))[0] for line in f
            if line.strip()
        ]


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
