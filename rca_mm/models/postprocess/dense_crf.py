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
single-threaded C++ and dominates test time otherwise).
"""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Union

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


def dense_crf_batch(images: Sequence[Union[str, np.ndarray]],
                    probs: Sequence[np.ndarray],
                    *,
                    workers: int = 0,
                    return_labels: bool = False,
                    **crf_params) -> List[np.ndarray]:
    """Run :func:`dense_crf` on many images, in a process pool if asked.

    Args:
        images (Sequence[str | np.ndarray]): RGB uint8 images or paths to
            image files (read as RGB in the worker, which saves sending the
            pixels through a pipe).
        probs (Sequence[np.ndarray]): one (C, H, W) probability array per
            image.
        workers (int): worker processes; 0 or 1 runs in this process.
            Default: 0.
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
    jobs = [(img, prob, return_labels, crf_params)
            for img, prob in zip(images, probs)]
    if workers <= 1 or len(jobs) <= 1:
        return [_crf_job(*job) for job in jobs]
    context: Optional[multiprocessing.context.BaseContext] = None
    if 'fork' in multiprocessing.get_all_start_methods():
        # fork: the workers start in milliseconds, without re-importing.
        context = multiprocessing.get_context('fork')
    with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(_crf_job, *zip(*jobs)))
