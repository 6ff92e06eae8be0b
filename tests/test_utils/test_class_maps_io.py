import numpy as np
import pytest

from rca_mm.utils.class_maps_io import load_class_maps


def test_reads_ids_maps_and_extra_arrays(tmp_path):
    path = str(tmp_path / 'a.npz')
    maps = np.arange(12, dtype=np.float16).reshape(2, 2, 3) / 16
    np.savez(path, class_ids=np.array([3, 7], np.int32), maps=maps,
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
    with pytest.raises(ValueError,
                       match=r"^T: '.*b\.npz' holds 2 class ids but cams "
                       r'of shape \(1, 4, 4\)'):
        load_class_maps(path, 'cams', 'T')
    with pytest.raises(ValueError,
                       match=r'b\.npz.*not an \.npz with class_ids, maps'):
        load_class_maps(path, 'maps', 'T')
    bad = tmp_path / 'c.npz'
    bad.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match=r'^T: .*c\.npz.* is not an \.npz'):
        load_class_maps(str(bad), 'cams', 'T')
