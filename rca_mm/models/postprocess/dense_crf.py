"""Fully connected (dense) CRF refinement of per-pixel class probabilities.

A thin, validated wrapper of Krähenbühl & Koltun's mean-field inference
("Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials",
NeurIPS 2011) as packaged by ``pydensecrf2`` (module ``pydensecrf``). The
energy is

.. code:: text

    E(x) = sum_i -log P_i(x_i)
         + sum_{i<j} mu(x_i, x_j) [ w_g exp(-|p_i-p_j|^2 / 2 s_g^2)
                                   + w_b exp(-|p_i-p_j|^2 / 2 s_xy^2
                                             -|I_i-I_j|^2 / 2 s_rgb^2) ]

with the Potts compatibility ``mu``. Two users with two sets of defaults:

- pseudo-label recipes (PSA/EPS/RCA): the function defaults below,
  ``gaussian 3/3, bilateral 80/13/10`` (PSA's ``crf_inference``);
- DeepLabV2 stage-2 test time (deeplab-pytorch / EPS / OAA):
  ``DEEPLABV2_CRF_PARAMS`` (10 iterations, gaussian xy 1 weight 3,
  bilateral xy 67 rgb 3 weight 4).

:func:`dense_crf_batch` runs many images in a process pool (the CRF is
single-threaded C++ and dominates test time otherwise). A
:class:`WorkerPool` keeps that pool from batch to batch: its owner (the
DeepLabV2 segmentor, the pseudo-label metric) starts the worker processes
once, on the first batch that needs them, instead of once per batch.
"""
import multiprocessing
import os
import weakref
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from rca_mm.fileio import read_image

# deeplab-pytorch configs/voc12.yaml and cocostuff164k.yaml (CRF section),
# used as well by EPS's and OAA's DeepLabV2 test scripts.
DEEPLABV2_CRF_PARAMS: Dict[str, float] = dict(
    num_iters=10,
    gaussian_sxy=1.,
    gaussian_compat=3.,
    bilateral_sxy=67.,
    bilateral_srgb=3.,
    bilateral_compat=4.)

# The unary is -log(p); probabilities are clipped to this floor first, as
# pydensecrf's ``unary_from_softmax`` does (its default clip).
PROB_FLOOR = 1e-5

INSTALL_HINT = ('dense CRF needs the package `pydensecrf2` (module '
                '`pydensecrf`), which could not be imported ({err}). Install '
                'the environment with `bash tools/install.sh` (it builds '
                'pydensecrf2), or turn the CRF option off.')


def import_densecrf():
    """Import ``pydensecrf.densecrf`` or raise an ImportError saying how.

    Returns:
        module: ``pydensecrf.densecrf``.

    Raises:
        ImportError: naming the package ``pydensecrf2`` and
            ``bash tools/install.sh`` when the module cannot be imported.
    """
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as err:
        raise ImportError(INSTALL_HINT.format(err=err)) from err
    return dcrf


def _check_inputs(image: np.ndarray, probs: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 \
            or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            'dense_crf: `image` must be an (H, W, 3) uint8 RGB array, got '
            f'{getattr(image, "dtype", type(image))} of shape '
            f'{getattr(image, "shape", None)}')
    if not isinstance(probs, np.ndarray) or probs.ndim != 3:
        raise ValueError('dense_crf: `probs` must be a (C, H, W) array, got '
                         f'shape {getattr(probs, "shape", None)}')
    if probs.shape[1:] != image.shape[:2]:
        raise ValueError(
            f'dense_crf: `probs` is {probs.shape[1:]} (H, W) but `image` is '
            f'{image.shape[:2]}; resize the probabilities to the image first')
    if probs.shape[0] < 1:
        raise ValueError('dense_crf: `probs` has no classes')


def dense_crf(image: np.ndarray,
              probs: np.ndarray,
              *,
              num_iters: int = 10,
              gaussian_sxy: float = 3.,
              gaussian_compat: float = 3.,
              bilateral_sxy: float = 80.,
              bilateral_srgb: float = 13.,
              bilateral_compat: float = 10.) -> np.ndarray:
    """Refine class probabilities with a fully connected CRF.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB image, the one the
            probabilities were predicted for (at its original size).
        probs (np.ndarray): (C, H, W) probabilities summing to 1 over C. They
            are clipped to ``PROB_FLOOR`` before the log.
        num_iters (int): mean-field iterations. Default: 10.
        gaussian_sxy (float): spatial std (pixels) of the smoothness kernel.
            Default: 3 (PSA).
        gaussian_compat (float): weight of the smoothness kernel. Default: 3.
        bilateral_sxy (float): spatial std (pixels) of the appearance kernel.
            Default: 80 (PSA).
        bilateral_srgb (float): colour std of the appearance kernel.
            Default: 13 (PSA).
        bilateral_compat (float): weight of the appearance kernel.
            Default: 10 (PSA).

    Returns:
        np.ndarray: (C, H, W) float32 refined marginals (sum to 1 over C).

    Raises:
        ImportError: pydensecrf is not importable (names ``pydensecrf2``).
        ValueError: shapes or dtypes are not as documented.
    """
    dcrf = import_densecrf()
    _check_inputs(image, probs)
    num_classes, height, width = probs.shape
    # Unary potential: -log P, the first term of E(x) above.
    unary = -np.log(np.clip(probs.astype(np.float32), PROB_FLOOR, None))
    crf = dcrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(
        np.ascontiguousarray(unary.reshape(num_classes, -1), np.float32))
    # Smoothness kernel (w_g, s_g), then appearance kernel (w_b, s_xy, s_rgb).
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy,
        srgb=bilateral_srgb,
        rgbim=np.ascontiguousarray(image),
        compat=bilateral_compat)
    marginals = crf.inference(int(num_iters))
    return np.asarray(marginals, np.float32).reshape(num_classes, height,
                                                     width)


def _crf_job(image: Union[str, np.ndarray], probs: np.ndarray,
             return_labels: bool, params: dict) -> np.ndarray:
    path = image if isinstance(image, str) else None
    if path is not None:
        # EXIF-rotated, as mmseg's LoadImageFromFile gave the network.
        image, _ = read_image(path, channel_order='rgb', exif_orientation=True)
    try:
        marginals = dense_crf(image, probs, **params)
    except ValueError as err:
        if path is None:
            raise
        raise ValueError(f'dense CRF on {path!r}: {err}') from err
    if return_labels:
        dtype = np.uint8 if len(marginals) <= 256 else np.int64
        return marginals.argmax(axis=0).astype(dtype)
    return marginals


def _shutdown(pool: ProcessPoolExecutor, owner_pid: int) -> None:
    """Stop ``pool``'s workers, from the process that started them only (a
    forked child, e.g. a DataLoader worker, holds a copy it must not
    touch)."""
    if os.getpid() == owner_pid:
        pool.shutdown(wait=True)


class WorkerPool:
    """A process pool started on first use and kept until closed.

    ``map`` runs in this process when ``workers`` is 0 or 1 or there is a
    single job; otherwise in ``workers`` processes (``fork`` where the
    platform has it: the workers start in milliseconds, without
    re-importing), started on the first such call and reused by the next.
    The pool is shut down by :meth:`close`, when the owner is garbage
    collected, or at interpreter exit, whichever comes first. It belongs to
    the process that started it: in a forked child (a DataLoader worker
    holding a copy of the model) ``map`` starts the child's own pool and the
    parent's is never touched. Copies and pickles of the owner
    (``copy.deepcopy``, a spawned process) carry the worker count only.

    Args:
        workers (int): worker processes; 0 or 1 runs every job in this
            process.
    """

    def __init__(self, workers: int = 0) -> None:
        workers = int(workers)
        if workers < 0:
            raise ValueError(f'WorkerPool: workers must be >= 0, got '
                             f'{workers}')
        self.workers = workers
        self._pool: Optional[ProcessPoolExecutor] = None
        self._pid: Optional[int] = None
        self._finalizer: Optional[weakref.finalize] = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            context = None
            if 'fork' in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context('fork')
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context)
            self._pid = os.getpid()
            self._finalizer = weakref.finalize(self, _shutdown, self._pool,
                                               self._pid)
        return self._pool

    @property
    def started(self) -> bool:
        """Whether this process holds a running pool."""
        return self._pool is not None and self._pid == os.getpid()

    def map(self, fn: Callable, *iterables) -> list:
        """``[fn(*args) for args in zip(*iterables)]``, in the pool when it
        is worth it (``fn`` and the arguments must pickle); an exception of
        ``fn`` is raised here."""
        jobs = list(zip(*iterables))
        if self.workers <= 1 or len(jobs) <= 1:
            return [fn(*job) for job in jobs]
        return list(self._executor().map(fn, *zip(*jobs)))

    def close(self) -> None:
        """Shut the workers down (a later ``map`` starts new ones)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool = self._pid = self._finalizer = None

    def __getstate__(self) -> dict:
        return dict(workers=self.workers)

    def __setstate__(self, state: dict) -> None:
        self.__init__(state['workers'])

    def __repr__(self) -> str:
        return f'WorkerPool(workers={self.workers})'


def dense_crf_batch(images: Sequence[Union[str, np.ndarray]],
                    probs: Sequence[np.ndarray],
                    *,
                    workers: int = 0,
                    pool: Optional[WorkerPool] = None,
                    return_labels: bool = False,
                    **crf_params) -> List[np.ndarray]:
    """Run :func:`dense_crf` on many images, in a process pool if asked.

    Args:
        images (Sequence[str | np.ndarray]): RGB uint8 images or paths to
            image files (read as RGB in the worker, which saves sending the
            pixels through a pipe).
        probs (Sequence[np.ndarray]): one (C, H, W) probability array per
            image.
        workers (int): worker processes of a pool made for this call and
            shut down after it; 0 or 1 runs in this process. Default: 0.
        pool (WorkerPool, optional): a kept pool to run in instead
            (``workers`` is then ignored). Default: None.
        return_labels (bool): return (H, W) argmax label maps instead of
            marginals (less data back through the pipe). Default: False.
        **crf_params: keyword arguments of :func:`dense_crf`.

    Returns:
        list[np.ndarray]: per image, (C, H, W) float32 marginals, or (H, W)
        label maps when ``return_labels``.
    """
    if len(images) != len(probs):
        raise ValueError(f'dense_crf_batch: {len(images)} images but '
                         f'{len(probs)} probability maps')
    import_densecrf()  # fail here, with the install hint, not in a worker
    count = len(images)
    args = (images, probs, [return_labels] * count, [crf_params] * count)
    if pool is not None:
        return pool.map(_crf_job, *args)
    once = WorkerPool(min(workers, count))
    try:
        return once.map(_crf_job, *args)
    finally:
        once.close()
