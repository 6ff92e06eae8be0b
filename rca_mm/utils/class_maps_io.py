"""Reading ``.npz`` archives of per-class maps.

Two stages store one archive per image in the same layout: ``class_ids``
``(K,)`` and K maps ``(K, H, W)``, under a stage-specific key. The CAM
export writes ``cams`` (``rca_mm.evaluation.functional.pseudo_label_io``),
the OAA store ``maps`` plus the image's ``ori_shape``
(``rca_mm.structures.oaa_store``).
"""
from typing import Dict, Sequence, Tuple

import numpy as np


def load_class_maps(
    path: str,
    maps_key: str,
    owner: str,
    extra_keys: Sequence[str] = ()
) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    """Read ``class_ids`` and the maps of an existing ``.npz`` archive.

    Args:
        path (str): the archive.
        maps_key (str): the key of the ``(K, H, W)`` maps.
        owner (str): who reads, the start of every error message.
        extra_keys (Sequence[str]): further arrays to return as they are.

    Returns:
        tuple: ``class_ids`` (K,) int64, the maps (K, H, W) float32 and a
        dict of the ``extra_keys`` arrays.

    Raises:
        ValueError: the file is not an ``.npz`` with these keys, or its maps
            are not K maps of (H, W).
    """
    keys = ('class_ids', maps_key, *extra_keys)
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in keys}
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f'{owner}: {path!r} is not an .npz with '
                         f'{", ".join(keys)} ({err})') from None
    class_ids = arrays.pop('class_ids').astype(np.int64)
    maps = arrays.pop(maps_key).astype(np.float32)
    if maps.ndim != 3 or len(maps) != len(class_ids):
        raise ValueError(f'{owner}: {path!r} holds {len(class_ids)} class '
                         f'ids but {maps_key} of shape {maps.shape}')
    return class_ids, maps, arrays
