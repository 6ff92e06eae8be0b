import multiprocessing as mp
import os
import os.path as osp

import numpy as np
import pytest

from rca_mm.structures import OAAStore


def test_update_and_load_roundtrip(tmp_path):
    store = OAAStore(str(tmp_path))
    maps = np.array([[[0., .5], [1., .25]]], dtype=np.float32)
    store.update('2007_000032', [3], maps, ori_shape=(20, 30))
    entry = store.load('2007_000032')
    assert entry.class_ids.tolist() == [3]
    assert entry.maps.dtype == np.float32 and entry.maps.shape == (1, 2, 2)
    np.testing.assert_allclose(entry.maps, maps)
    assert entry.ori_shape == (20, 30)
    with np.load(osp.join(str(tmp_path), '2007_000032.npz')) as raw:
        assert raw['maps'].dtype == np.float16
        assert raw['class_ids'].dtype == np.int64
    assert '2007_000032' in store and 'other' not in store
    assert store.names() == ['2007_000032']


def test_max_accumulation_and_new_classes(tmp_path):
    store = OAAStore(str(tmp_path))
    store.update('a', [5, 1], np.array([[[.2, .9]], [[.5, .5]]]), (1, 2))
    store.update('a', [1, 7], np.array([[[.7, .1]], [[.3, .0]]]))
    entry = store.load('a')
    assert entry.class_ids.tolist() == [1, 5, 7]
    np.testing.assert_allclose(
        entry.maps, [[[.7, .5]], [[.2, .9]], [[.3, 0.]]], atol=1e-3)
    assert entry.ori_shape == (1, 2)  # kept from the first update


def test_leftover_temp_file_and_failed_write(tmp_path, monkeypatch):
    store = OAAStore(str(tmp_path))
    store.update('img', [0], np.full((1, 2, 2), .5))
    # A temp file left by a killed writer is ignored by load and names.
    with open(osp.join(str(tmp_path), '.img.npz123.tmp'), 'wb') as f:
        f.write(b'PK\x03\x04 truncated')
    assert store.names() == ['img']
    np.testing.assert_allclose(store.load('img').maps, .5)

    # A write that dies half-way leaves the old entry and no temp file.
    def broken_savez(f, **arrays):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(np, 'savez', broken_savez)
    with pytest.raises(OSError, match='disk full'):
        store.update('img', [0], np.ones((1, 2, 2)))
    monkeypatch.undo()
    np.testing.assert_allclose(store.load('img').maps, .5)
    tmp_files = [f for f in os.listdir(str(tmp_path)) if f.endswith('.tmp')]
    assert tmp_files == ['.img.npz123.tmp']
    assert store.clear() == 1
    assert store.names() == [] and not any(
        f.endswith('.tmp') for f in os.listdir(str(tmp_path)))


def test_errors_are_clear(tmp_path):
    store = OAAStore(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='nope'):
        store.load('nope')
    with pytest.raises(ValueError, match='path separator'):
        store.update('a/b', [0], np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        store.update('a', [0], np.full((1, 1, 1), 2.))
    with pytest.raises(ValueError, match='class ids'):
        store.update('a', [0, 1], np.zeros((1, 1, 1)))
    store.update('a', [0], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match='fixed'):
        store.update('a', [0], np.zeros((1, 3, 3)))
    with open(osp.join(str(tmp_path), 'bad.npz'), 'wb') as f:
        f.write(b'not a zip')
    with pytest.raises(ValueError, match='bad.npz'):
        store.load('bad')


def _writer(store_dir, rank, names, steps):
    store = OAAStore(store_dir)
    rng = np.random.default_rng(rank)
    for step in range(steps):
        for name in names:
            value = rng.random((1, 3, 3)).astype(np.float32)
            store.update(name, [0], value)
            np.save(
                osp.join(store_dir, f'.log_{rank}_{name}_{step}.npy'), value)


def test_concurrent_processes(tmp_path):
    store_dir = str(tmp_path)
    ctx = mp.get_context('fork')
    # Rank 0 writes 'a' and 'shared', rank 1 'b' and 'shared'.
    procs = [
        ctx.Process(target=_writer, args=(store_dir, r, names, 5))
        for r, names in ((0, ['a', 'shared']), (1, ['b', 'shared']))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = OAAStore(store_dir)
    assert store.names() == ['a', 'b', 'shared']
    for name, ranks in (('a', [0]), ('b', [1]), ('shared', [0, 1])):
        written = [
            np.load(osp.join(store_dir, f'.log_{r}_{name}_{s}.npy'))
            for r in ranks for s in range(5)
        ]
        expected = np.max(written, axis=0).astype(np.float16)
        np.testing.assert_array_equal(store.load(name).maps, expected)
