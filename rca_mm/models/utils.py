"""Small pieces the models share: the CAMs' max-normalisation and the
image-by-image prediction of a test batch."""
from typing import Callable, List

from torch import Tensor


def max_normalize(maps: Tensor, eps: float = 1e-5) -> Tensor:
    """Each map divided by its own maximum (at least ``eps``).

    The per-class max-normalisation of CAMs (as PSA, IRN and EPS export
    them): a map with a positive maximum ends at 1, an all-zero map stays
    zero.

    Args:
        maps (Tensor): ``(..., H, W)``, non-negative.
        eps (float): the smallest divisor. Default: 1e-5.

    Returns:
        Tensor: the maps, the shape of ``maps``, in [0, 1].
    """
    return maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(eps)


def predict_image_by_image(data: dict, data_preprocessor: Callable,
                           predict: Callable) -> List:
    """Preprocess and predict a collated test batch one image at a time.

    mmseg's ``SegDataPreprocessor`` stacks a batch only when all its images
    have one size; a batch of mixed sizes (``test_dataloader.batch_size >
    1`` on VOC) goes through the preprocessor and ``predict`` image by
    image.

    Args:
        data (dict): a collated batch, ``inputs`` (list of ``(3, H, W)``
            tensors) and ``data_samples``.
        data_preprocessor (Callable): the model's data preprocessor.
        predict (Callable): ``predict(inputs, data_samples)`` -> a list of
            predicted samples.

    Returns:
        list: the predictions, in batch order.
    """
    results = []
    for image, sample in zip(data['inputs'], data['data_samples']):
        one = data_preprocessor(
            dict(inputs=[image], data_samples=[sample]), False)
        results.extend(predict(one['inputs'], one['data_samples']))
    return results


__all__ = ['max_normalize', 'predict_image_by_image']
