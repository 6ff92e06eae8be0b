import os
import os.path as osp

import pytest

from rca_mm.fileio import (find_image_list, list_stems, read_list_file,
                           read_tag_file, stem_of, write_tag_file)


def test_tag_file_round_trip(tmp_path):
    path = str(tmp_path / 'train_cls.txt')
    write_tag_file(path, ['b', 'a'], {'a': [0, 19], 'b': [3]})
    assert open(path).read() == 'b 3\na 0 19\n'
    assert read_tag_file(path, 20) == {'b': [3], 'a': [0, 19]}
    with pytest.raises(ValueError, match=r'train_cls\.txt:2: unknown class'):
        read_tag_file(path, 19)
    assert os.listdir(tmp_path) == ['train_cls.txt']


def test_list_files(tmp_path):
    path = tmp_path / 'train.txt'
    path.write_text('/JPEGImages/x.jpg /SegmentationClassAug/x.png\n\ny\n')
    assert read_list_file(str(path)) == ['x', 'y']
    assert stem_of('a/b/2007_000032.jpg') == '2007_000032'
    path.write_text('x\nx\n')
    with pytest.raises(ValueError, match=r"train\.txt' lists 1 image"):
        read_list_file(str(path))
    with pytest.raises(FileNotFoundError, match='VOC val list.*nope.txt'):
        read_list_file(str(tmp_path / 'nope.txt'), 'VOC val list')
    (tmp_path / 'a.png').write_bytes(b'')
    assert list_stems(str(tmp_path), '.png') == ({'a'}, True)
    assert list_stems(str(tmp_path / 'none'), '.png') == (set(), False)


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
