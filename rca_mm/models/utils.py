"""Small pieces the models share: the CAMs' max-normalisation."""
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


__all__ = ['max_normalize']
