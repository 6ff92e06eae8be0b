import multiprocessing as mp
import os
import os.path as osp

import numpy as np
import pytest

from rca_mm.fileio import OAAMemory, OAAStore


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


def _raw(store_dir):
    """Every entry's arrays as stored (float16 maps), by file name."""
    out = {}
    for f in sorted(os.listdir(store_dir)):
        if f.endswith('.npz') and not f.startswith('.'):
            with np.load(osp.join(store_dir, f)) as x:
                out[f] = {k: x[k].copy() for k in x.files}
    return out


def assert_same_store(a_dir, b_dir):
    a, b = _raw(a_dir), _raw(b_dir)
    assert a and sorted(a) == sorted(b)
    for name in a:
        assert sorted(a[name]) == sorted(b[name]), name
        for key in a[name]:
            assert a[name][key].dtype == b[name][key].dtype, (name, key)
            np.testing.assert_array_equal(
                a[name][key], b[name][key], err_msg=f'{name}:{key}')


def _updates(seed, num=60):
    """Random updates of 5 images, 4 classes, maps of 3x5, values chosen to
    round differently to float16."""
    rng = np.random.default_rng(seed)
    for _ in range(num):
        name = f'img{rng.integers(5)}'
        ids = rng.choice(4, size=rng.integers(1, 4), replace=False).tolist()
        maps = rng.random((len(ids), 3, 5)).astype(np.float32)
        maps[rng.random(maps.shape) < .2] = 1.  # ties at the peak
        yield name, ids, maps, (30, 50)


def test_memory_then_flush_equals_writing_each_update(tmp_path):
    direct = OAAStore(str(tmp_path / 'direct'))
    for update in _updates(0):
        direct.update(*update)
    # One process, flushing twice in the middle.
    memory, store = OAAMemory(), OAAStore(str(tmp_path / 'memory'))
    for i, update in enumerate(_updates(0)):
        memory.update(*update)
        if i in (7, 31):
            memory.flush(store)
            assert len(memory) == 0 and memory.nbytes == 0
    memory.flush(store, num_threads=4)
    assert_same_store(str(tmp_path / 'direct'), str(tmp_path / 'memory'))
    # Three "processes", each holding every third update, flushed in
    # reverse order into one store: the maximum is exact in any order.
    memories = [OAAMemory() for _ in range(3)]
    for i, update in enumerate(_updates(0)):
        memories[i % 3].update(*update)
    shared = OAAStore(str(tmp_path / 'shared'))
    for m in reversed(memories):
        m.flush(shared, num_threads=2)
    assert_same_store(str(tmp_path / 'direct'), str(tmp_path / 'shared'))


def test_memory_holds_float16_and_counts_its_bytes(tmp_path):
    memory = OAAMemory()
    maps = np.full((2, 32, 32), 1 / 3, np.float32)
    memory.update('a', [4, 1], maps, ori_shape=(300, 500))
    assert 'a' in memory and memory.names() == ['a']
    assert memory.class_ids('a') == [1, 4] and memory.class_ids('b') == []
    per_map = memory.nbytes / 2
    assert 32 * 32 * 2 <= per_map <= 32 * 32 * 2 + 200  # float16 + header
    memory.update('a', [1], np.full((1, 32, 32), .5))  # merged in place
    assert memory.nbytes == 2 * per_map
    memory.update('a', [0], np.zeros((1, 32, 32)), ori_shape=None)
    assert memory.nbytes == 3 * per_map
    store = OAAStore(str(tmp_path))
    assert memory.flush(store) == {'a': [0, 1, 4]}
    entry = store.load('a')
    assert entry.ori_shape == (300, 500)  # kept from the first update
    assert entry.maps[1].max() == np.float32(np.float16(.5))
    assert entry.maps[2].max() == np.float32(np.float16(1 / 3))
    assert store.stored_class_ids() == {'a': [0, 1, 4]}


def test_memory_errors_and_a_failed_flush(tmp_path, monkeypatch):
    memory = OAAMemory()
    with pytest.raises(ValueError, match=r'OAAMemory.update.*\[0, 1\]'):
        memory.update('a', [0], np.full((1, 1, 1), 2.))
    with pytest.raises(ValueError, match='repeated class ids'):
        memory.update('a', [0, 0], np.zeros((2, 1, 1)))
    memory.update('a', [0], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match='fixed'):
        memory.update('a', [1], np.zeros((1, 3, 3)))
    memory.update('b', [2], np.full((1, 2, 2), .25))
    store = OAAStore(str(tmp_path))
    # The store refuses another size than the one on disk, at the flush.
    store.update('a', [0], np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match='fixed'):
        memory.flush(store)
    assert memory.names() == ['a', 'b']  # kept for a second try
    os.remove(store.path('a'))
    calls = []
    update = OAAStore.update

    def flaky(self, name, *args):
        calls.append(name)
        if len(calls) == 2:
            raise OSError('disk full')
        update(self, name, *args)

    monkeypatch.setattr(OAAStore, 'update', flaky)
    with pytest.raises(OSError, match='disk full'):
        memory.flush(store)
    assert memory.names() == ['a', 'b'] and store.names() == ['a']
    memory.flush(store)  # 'a' merged again: unchanged
    assert store.names() == ['a', 'b']
    np.testing.assert_array_equal(store.load('b').maps, .25)


def test_stored_class_ids_names_a_bad_file(tmp_path):
    store = OAAStore(str(tmp_path))
    store.update('x', [3, 1], np.zeros((2, 1, 1)))
    assert store.stored_class_ids() == {'x': [1, 3]}
    with open(osp.join(str(tmp_path), 'bad.npz'), 'wb') as f:
        f.write(b'not a zip')
    with pytest.raises(ValueError, match='bad.npz'):
        store.stored_class_ids()
