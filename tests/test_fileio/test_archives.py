import os

import numpy as np
import pytest

from rca_mm.fileio import (load_cam_npz, load_class_maps, load_oaa_npz,
                           save_cam_npz, save_oaa_npz)


def test_reads_ids_maps_and_extra_arrays(tmp_path):
    path = str(tmp_path / 'a.npz')
    maps = np.arange(12, dtype=np.float16).reshape(2, 2, 3) / 16
    np.savez(
        path,
        class_ids=np.array([3, 7], np.int32),
        maps=maps,
        ori_shape=np.array([20, 30]))
    class_ids, read, extra = load_class_maps(path, 'maps', 'T',
                                             ('ori_shape', ))
    assert class_ids.dtype == np.int64 and class_ids.tolist() == [3, 7]
    assert read.dtype == np.float32 and np.array_equal(read, maps)
    assert list(extra) == ['ori_shape']
    assert extra['ori_shape'].tolist() == [20, 30]


def test_errors_name_the_owner_the_file_and_the_fault(tmp_path):
    path = str(tmp_path / 'b.npz')
    np.savez(path, class_ids=np.array([1, 2]), cams=np.zeros((1, 4, 4)))
    with pytest.raises(
            ValueError,
            match=r"^T: '.*b\.npz' holds 2 class ids but cams "
            r'of shape \(1, 4, 4\)'):
        load_class_maps(path, 'cams', 'T')
    with pytest.raises(
            ValueError, match=r'b\.npz.*not an \.npz with class_ids, maps'):
        load_class_maps(path, 'maps', 'T')
    bad = tmp_path / 'c.npz'
    bad.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match=r'^T: .*c\.npz.* is not an \.npz'):
        load_class_maps(str(bad), 'cams', 'T')


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
    with pytest.raises(ValueError, match=r'^OAAStore: .*bad\.npz'):
        load_oaa_npz(str(bad))


def test_oaa_npz_round_trip(tmp_path):
    path = str(tmp_path / 'img.npz')
    maps = np.array([[[0., .5]], [[1., .25]]], np.float32)
    save_oaa_npz(path, [1, 5], maps, (20, 30))
    with np.load(path) as raw:
        assert sorted(raw.files) == ['class_ids', 'maps', 'ori_shape']
        assert raw['class_ids'].dtype == np.int64
        assert raw['maps'].dtype == np.float16
        assert raw['ori_shape'].dtype == np.int64
    class_ids, loaded, ori_shape = load_oaa_npz(path)
    assert class_ids.tolist() == [1, 5] and ori_shape == (20, 30)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, maps)
    # Without the original size an empty array is stored, read as None.
    save_oaa_npz(path, [1], maps[:1], None)
    with np.load(path) as raw:
        assert raw['ori_shape'].shape == (0, )
    assert load_oaa_npz(path)[2] is None
    assert os.listdir(tmp_path) == ['img.npz']
