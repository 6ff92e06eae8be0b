import os
import os.path as osp

import pytest

from rca_mm.evaluation.functional import find_image_list, read_image_names


def test_read_image_names(tmp_path):
    """A line's first token names the image (its stem); empty lines are
    skipped."""
    list_file = tmp_path / 'list.txt'
    list_file.write_text('a\n/JPEGImages/b.jpg x\n\n c.png\n')
    assert read_image_names(str(list_file)) == ['a', 'b', 'c']
    with pytest.raises(FileNotFoundError, match="image list '"):
        read_image_names(str(tmp_path / 'none.txt'))


def test_find_image_list(tmp_path, monkeypatch):
    root = tmp_path / 'VOC'
    os.makedirs(root / 'JPEGImages' / 'sub')
    os.makedirs(root / 'ImageSets')
    (root / 'ImageSets' / 'train.txt').write_text('a\n')
    img = str(root / 'JPEGImages' / 'sub' / 'a.jpg')
    found = str(root / 'ImageSets' / 'train.txt')
    # Under the nearest parent of the image that holds it.
    assert find_image_list('ImageSets/train.txt', img) == found
    # Absolute as given; relative to the working directory first.
    assert find_image_list(found, '/elsewhere/a.jpg') == found
    monkeypatch.chdir(root)
    assert find_image_list('ImageSets/train.txt',
                           '/elsewhere/a.jpg') == 'ImageSets/train.txt'
    assert find_image_list('ImageSets/val.txt', img) is None
    assert find_image_list(osp.join(str(root), 'none.txt'), img) is None
