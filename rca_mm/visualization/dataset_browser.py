"""The panels of a dataset sample as the model receives it (after the
pipeline's augmentation), for ``tools/analysis_tools/browse_dataset.py``.

.. code:: text

    dataset[i] = dict(inputs, data_samples)      end of the pipeline
      sample_panels(visualizer, item)
        image                                    inputs, BGR -> RGB
        tags | classes                           gt_img_labels (stage 1) or
                                                 the classes of gt_sem_seg,
                                                 in the palette's colours
        saliency, saliency on image              gt_saliency (stage 1)
        label                                    gt_sem_seg (GT or pseudo
                                                 label), palette over image
      draw_sample(visualizer, item) -> one row of titled panels

A saliency map or label that a transform moved differently from the image
(a flip or crop applied to one and not the other) shows as a shifted
overlay in the "saliency on image" and "label" panels.
"""
from typing import List, Sequence

import numpy as np

from rca_mm.utils.arrays import to_numpy
from .wsss_local_visualizer import Panel, WSSSLocalVisualizer


def sample_image(item: dict) -> np.ndarray:
    """The packed image of a pipeline output as ``(H, W, 3)`` uint8 RGB.

    Args:
        item (dict): ``dataset[i]``: ``inputs`` ``(3, H, W)`` BGR as the
            packing transforms leave it.

    Returns:
        np.ndarray: the image, RGB.
    """
    image = to_numpy(item['inputs'])
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f'expected inputs of shape (3, H, W) (or (1, H, W))'
                         f', got {image.shape}')
    image = image.transpose(1, 2, 0)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(
        np.clip(image, 0, 255).astype(np.uint8)[..., ::-1])


def sample_classes(data_sample, ignore_index: int = 255) -> List[int]:
    """The label-map classes of a sample: its tags (``gt_img_labels``, tag
    ``j`` is class ``j + 1``), else the classes of ``gt_sem_seg`` other than
    0 and ``ignore_index``."""
    if 'gt_img_labels' in data_sample:
        tags = to_numpy(data_sample.gt_img_labels).reshape(-1)
        return [int(j) + 1 for j in np.flatnonzero(tags > 0.5)]
    if 'gt_sem_seg' in data_sample:
        values = np.unique(to_numpy(data_sample.gt_sem_seg.data))
        return [int(v) for v in values if v not in (0, ignore_index)]
    return []


def class_list_panel(visualizer: WSSSLocalVisualizer, classes: Sequence[int],
                     shape: tuple) -> np.ndarray:
    """A white panel that names ``classes``, each on a swatch of its
    palette colour.

    Args:
        visualizer (WSSSLocalVisualizer): its ``dataset_meta`` gives the
            names and the palette.
        classes (Sequence[int]): label-map class ids.
        shape (tuple): ``(H, W)`` of the panel.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.
    """
    h, w = shape[:2]
    panel = np.full((h, w, 3), 255, dtype=np.uint8)
    names = visualizer.dataset_meta.get('classes')
    palette = visualizer.dataset_meta.get('palette')
    line = max(min(h // max(len(classes), 1), 14), 6)
    for row, cls in enumerate(classes[:max(h // line, 1)]):
        if palette is not None and cls < len(palette):
            top = row * line
            panel[top + 1:top + line - 1, 1:line - 1] = palette[cls]
    if not classes:
        return panel
    visualizer.set_image(panel)
    texts = [
        str(names[c]) if names is not None and c < len(names) else str(c)
        for c in classes[:max(h // line, 1)]
    ]
    positions = np.asarray([(line + 1, r * line) for r in range(len(texts))])
    visualizer.draw_texts(
        texts,
        positions,
        font_sizes=max(line * 0.6, 4),
        colors='black',
        vertical_alignments='top')
    return visualizer.get_image()


def sample_panels(visualizer: WSSSLocalVisualizer,
                  item: dict,
                  ignore_index: int = 255) -> List[Panel]:
    """The titled panels of one pipeline output.

    Args:
        visualizer (WSSSLocalVisualizer): with the dataset's ``dataset_meta``
            (class names and palette).
        item (dict): ``dataset[i]``: ``inputs`` and ``data_samples`` (a
            ``SegDataSample`` of ``PackWSSSInputs`` or ``PackSegInputs``).
        ignore_index (int): the "no label" value. Default: 255.

    Returns:
        list[tuple]: ``(title, (H, W, 3) uint8 RGB)``: ``image``, ``tags``
        (or ``classes`` of the label), then ``saliency`` and ``saliency on
        image`` when the sample has ``gt_saliency``, and ``label`` when it
        has ``gt_sem_seg``.
    """
    image = sample_image(item)
    sample = item['data_samples']
    shape = image.shape[:2]
    title = 'tags' if 'gt_img_labels' in sample else 'classes'
    panels = [('image', image),
              (title,
               class_list_panel(visualizer,
                                sample_classes(sample, ignore_index), shape))]
    if 'gt_saliency' in sample:
        saliency = to_numpy(sample.gt_saliency.data)[0].astype(np.float32)
        _check_shape(saliency, shape, 'gt_saliency', sample)
        grey = np.clip(saliency * 255 + 0.5, 0, 255).astype(np.uint8)
        panels.append(('saliency', np.repeat(grey[..., None], 3, axis=-1)))
        panels.append(
            ('saliency on image',
             visualizer.draw_heatmap(saliency, image, value_range=(0., 1.))))
    if 'gt_sem_seg' in sample:
        labels = to_numpy(sample.gt_sem_seg.data)[0]
        _check_shape(labels, shape, 'gt_sem_seg', sample)
        panels.append(('label', visualizer.draw_label_map(image, labels)))
    return panels


def draw_sample(visualizer: WSSSLocalVisualizer,
                item: dict,
                ignore_index: int = 255) -> np.ndarray:
    """:func:`sample_panels` tiled in one row with their titles.

    Returns:
        np.ndarray: ``(title_height + H, n * W, 3)`` uint8 RGB.
    """
    return visualizer.draw_panels(
        [sample_panels(visualizer, item, ignore_index)])


def _check_shape(array: np.ndarray, shape: tuple, key: str, sample) -> None:
    if tuple(array.shape[:2]) != tuple(shape):
        name = sample.metainfo.get('img_path', 'the sample')
        raise ValueError(
            f'{key} of {name} is {tuple(array.shape[:2])} but the image is '
            f'{tuple(shape)}: a transform changed one and not the other')
