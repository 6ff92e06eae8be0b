import os

import numpy as np
import pytest
from PIL import Image

from rca_mm.evaluation.functional import (atomic_write, load_cam_npz,
                                          read_label_png, save_cam_npz)
from rca_mm.testing.voc_layout import save_palette_png


def test_atomic_write_crash_leaves_nothing(tmp_path):
    path = str(tmp_path / 'a.png')

    def crash(tmp):
        save_palette_png(np.ones((2, 2), np.uint8), tmp)
        assert tmp.endswith('.png') and os.path.isfile(tmp)
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(path, crash)
    assert os.listdir(tmp_path) == []
    # An existing file is left as it was.
    save_palette_png(np.zeros((2, 2), np.uint8), path)
    with pytest.raises(OSError):
        atomic_write(path, crash)
    np.testing.assert_array_equal(read_label_png(path), np.zeros((2, 2)))
    assert os.listdir(tmp_path) == ['a.png']
    atomic_write(path, lambda tmp: save_palette_png(np.full((2, 2), 3), tmp))
    np.testing.assert_array_equal(read_label_png(path), np.full((2, 2), 3))
    assert os.listdir(tmp_path) == ['a.png']


def test_cam_npz_round_trip(tmp_path):
    path = str(tmp_path / 'x.npz')
    cams = np.array([[[0.0, 0.25]], [[0.5, 1.0]]], np.float32)
    save_cam_npz(path, np.array([4, 9]), cams)
    with np.load(path) as archive:
        assert archive['cams'].dtype == np.float16
        assert sorted(archive.files) == ['cams', 'class_ids']
    class_ids, loaded = load_cam_npz(path)
    np.testing.assert_array_equal(class_ids, [4, 9])
    np.testing.assert_array_equal(loaded, cams)
    assert loaded.dtype == np.float32
    assert os.listdir(tmp_path) == ['x.npz']


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.npz'):
        load_cam_npz(str(tmp_path / 'nope.npz'))
    bad = tmp_path / 'bad.npz'
    np.savez(str(bad), other=np.zeros(2))
    with pytest.raises(ValueError, match='bad.npz'):
        load_cam_npz(str(bad))
    with pytest.raises(FileNotFoundError, match='nope.png'):
        read_label_png(str(tmp_path / 'nope.png'))
    rgb = tmp_path / 'rgb.png'
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match='mode RGB'):
        read_label_png(str(rgb))
    grey = tmp_path / 'grey.png'
    Image.fromarray(np.full((2, 2), 255, np.uint8)).save(grey)
    np.testing.assert_array_equal(read_label_png(str(grey)), 255)
