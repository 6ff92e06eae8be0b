"""dense_crf: shapes, normalisation, boundary sharpening, the missing-package
message and the process pool."""
import copy
import multiprocessing
import os
import pickle
import sys

import numpy as np
import pytest
from PIL import Image

from rca_mm.models.postprocess import (DEEPLABV2_CRF_PARAMS, WorkerPool,
                                       dense_crf, dense_crf_batch)

H, W, EDGE = 24, 40, 20


def two_region_case(shift=5, blur=4.):
    """An image with a vertical edge at EDGE and a blurred prediction whose
    boundary is ``shift`` pixels left of it."""
    rng = np.random.default_rng(0)
    image = np.full((H, W, 3), 40, np.float64)
    image[:, EDGE:] = 200
    image = np.clip(image + rng.normal(0, 3, image.shape), 0,
                    255).astype(np.uint8)
    truth = np.zeros((H, W), np.int64)
    truth[:, EDGE:] = 1
    fg = 1 / (1 + np.exp(-(np.arange(W) - (EDGE - shift)) / blur))
    fg = np.tile(fg, (H, 1)).astype(np.float32)
    return image, np.stack([1 - fg, fg]), truth


def boundary_accuracy(labels, truth, band=6):
    """Accuracy within ``band`` columns of the true edge."""
    cols = slice(EDGE - band, EDGE + band)
    return (labels[:, cols] == truth[:, cols]).mean()


@pytest.mark.parametrize(
    'params', [{}, DEEPLABV2_CRF_PARAMS], ids=['psa_defaults', 'deeplabv2'])
def test_crf_moves_a_blurred_boundary_onto_the_image_edge(params):
    image, probs, truth = two_region_case()
    before = boundary_accuracy(probs.argmax(0), truth)
    refined = dense_crf(image, probs, **params)
    after = boundary_accuracy(refined.argmax(0), truth)
    assert before == pytest.approx(8 / 12)  # columns 16-19 wrong
    assert after == 1.0
    assert refined.shape == probs.shape and refined.dtype == np.float32
    np.testing.assert_allclose(refined.sum(0), 1, atol=1e-5)


def test_zero_pairwise_weights_return_the_softmax_of_the_unary():
    image, probs, _ = two_region_case()
    probs[:, :, :3] = [[[1.]], [[0.]]]  # exact 0/1: clipped, no -inf
    refined = dense_crf(
        image, probs, num_iters=3, gaussian_compat=0., bilateral_compat=0.)
    expected = np.clip(probs, 1e-5, None)
    expected /= expected.sum(0, keepdims=True)
    np.testing.assert_allclose(refined, expected, atol=1e-5)


def test_bad_inputs_are_named():
    image, probs, _ = two_region_case()
    with pytest.raises(ValueError, match='uint8'):
        dense_crf(image.astype(np.float32), probs)
    with pytest.raises(ValueError, match='resize'):
        dense_crf(image, probs[:, :-1])
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        dense_crf(image, probs[0])


def test_missing_pydensecrf_names_the_package_and_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydensecrf', None)
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    image, probs, _ = two_region_case()
    for call in (lambda: dense_crf(image, probs),
                 lambda: dense_crf_batch([image], [probs], workers=2)):
        with pytest.raises(ImportError) as err:
            call()
        assert 'pydensecrf2' in str(err.value)
        assert 'bash tools/install.sh' in str(err.value)


def test_batch_in_a_pool_equals_one_by_one(tmp_path):
    image, probs, _ = two_region_case()
    path = str(tmp_path / 'edge.png')
    Image.fromarray(image).save(path)  # lossless: same pixels from the file
    flipped = np.ascontiguousarray(image[:, ::-1])
    serial = [dense_crf(image, probs), dense_crf(flipped, probs[:, :, ::-1])]
    pooled = dense_crf_batch([path, flipped], [probs, probs[:, :, ::-1]],
                             workers=2)
    for a, b in zip(serial, pooled):
        np.testing.assert_allclose(a, b, atol=1e-6)
    labels = dense_crf_batch([path], [probs], return_labels=True)
    np.testing.assert_array_equal(labels[0], serial[0].argmax(0))
    assert labels[0].dtype == np.uint8
    with pytest.raises(ValueError, match='edge.png'):
        dense_crf_batch([path], [probs[:, :-2]])


def _pid_plus(offset):
    return os.getpid() + offset


def _map_in_a_fork(pool, queue):
    # A forked child (a DataLoader worker holding the model) runs its own
    # pool; the parent's copy is left alone.
    try:
        queue.put((pool.started, pool.map(_pid_plus, [0, 0])))
    finally:
        pool.close()


def test_worker_pool_is_started_once_and_kept():
    pool = WorkerPool(2)
    assert not pool.started
    assert pool.map(_pid_plus, [1]) == [os.getpid() + 1]  # one job: here
    assert not pool.started
    first = set(pool.map(_pid_plus, [0] * 6))
    assert pool.started and os.getpid() not in first
    second = set(pool.map(_pid_plus, [0] * 6))
    assert second <= first  # the same worker processes, no new pool
    executor = pool._pool
    # Copies carry the worker count, not the processes.
    clone = copy.deepcopy(pool)
    assert clone.workers == 2 and not clone.started
    assert pickle.loads(pickle.dumps(pool)).workers == 2
    if 'fork' in multiprocessing.get_all_start_methods():
        queue = multiprocessing.get_context('fork').Queue()
        child = multiprocessing.get_context('fork').Process(
            target=_map_in_a_fork, args=(pool, queue))
        child.start()
        started, pids = queue.get(timeout=60)
        child.join(60)
        assert child.exitcode == 0
        assert not started and not set(pids) & first
        assert pool.started and pool._pool is executor
        assert set(pool.map(_pid_plus, [0] * 4)) <= first
    pool.close()
    assert not pool.started and executor._shutdown_thread
    with pytest.raises(ValueError, match='workers must be >= 0'):
        WorkerPool(-1)


def test_batch_in_a_kept_pool_equals_one_by_one():
    image, probs, _ = two_region_case()
    flipped = np.ascontiguousarray(image[:, ::-1])
    serial = dense_crf_batch([image, flipped], [probs, probs[:, :, ::-1]],
                             return_labels=True)
    pool = WorkerPool(2)
    for _ in range(2):
        pooled = dense_crf_batch([image, flipped], [probs, probs[:, :, ::-1]],
                                 pool=pool,
                                 return_labels=True)
        for a, b in zip(serial, pooled):
            np.testing.assert_array_equal(a, b)
    pool.close()
