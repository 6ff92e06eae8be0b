"""The PASCAL VOC colour map, in which every label PNG is written.

Entry ``i`` is the colour of label value ``i``: the bits of ``i`` are
interleaved into R, G and B (VOC's ``labelcolormap``). The ignore value 255
is entry 255, :data:`VOC_IGNORE_COLOUR`; background 0 is black.
"""
import numpy as np

#: RGB colour of the ignore value (255) in the VOC colour map.
VOC_IGNORE_COLOUR = (224, 224, 192)


def voc_palette(num_entries: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved class id), ``(N, 3)``.

    Args:
        num_entries (int): the number of colours, from label value 0.
            Default: 256.

    Returns:
        np.ndarray: ``(num_entries, 3)`` uint8 RGB.
    """
    palette = np.zeros((num_entries, 3), dtype=np.uint8)
    for label in range(num_entries):
        c, r, g, b = label, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[label] = (r, g, b)
    return palette
