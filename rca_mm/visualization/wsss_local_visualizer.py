"""The visualizer of rca_mm: mmseg's, plus the panels of a CAM classifier.

.. code:: text

    add_datasample(name, image, data_sample)
      |- 'pred_cams' in data_sample (a stage-1 classifier's output):
      |     one row of titled panels
      |     CAM <class> (per tag, jet on the image) | background (EPS pred_bg)
      |     | pseudo label (pred_sem_seg) | saliency | GT
      '- otherwise (stage 2): SegLocalVisualizer.add_datasample, unchanged

The pseudo label is the model's: ``CAMClassifier.predict`` sets
``pred_sem_seg`` by the recipe of ``model.test_cfg.pseudo_label``
(:mod:`rca_mm.evaluation.recipes`). Label maps (pseudo label, GT) are drawn
with mmseg's ``_draw_sem_seg`` and the dataset's palette; their ignore
pixels (255) get ``ignore_color``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import master_only
from mmengine.structures import PixelData
from mmseg.visualization import SegLocalVisualizer

from rca_mm.evaluation.functional import tagged_classes
from rca_mm.fileio import VOC_IGNORE_COLOUR
from rca_mm.registry import VISUALIZERS
from rca_mm.utils.arrays import to_numpy

# A titled panel: (title, (H, W, 3) uint8 RGB image).
Panel = Tuple[str, np.ndarray]


@VISUALIZERS.register_module()
class WSSSLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that also draws what a CAM classifier gives.

    For a sample with ``pred_cams`` (``CAMClassifier.predict``) it draws one
    row of panels of the image's size, each with its title above: the CAM
    of every tagged class (jet, min-max normalised, on the image; its
    ``pred_score`` in the title), the
    background map (``pred_bg``, EPS heads), the pseudo label
    (``pred_sem_seg``, when the model's ``test_cfg.pseudo_label`` sets a
    recipe), the saliency map (``gt_saliency``, grey) and the ground truth
    (``gt_sem_seg``). Any other sample (a segmentor's ``pred_sem_seg``) is
    drawn by ``SegLocalVisualizer``.

    Args:
        name (str): name of the instance. Default: 'visualizer'.
        image (np.ndarray, optional): RGB image to draw on. Default: None.
        vis_backends (list, optional): visual backend configs. Default:
            None.
        save_dir (str, optional): where the backends save. Default: None.
        classes (list, optional): class names, background first. Default:
            None (from ``dataset_meta``).
        palette (list, optional): their RGB colours. Default: None.
        dataset_name (str, optional): see ``SegLocalVisualizer``. Default:
            None.
        alpha (float): opacity of the label colours. Default: 0.8.
        heatmap_alpha (float): opacity of the CAM heatmaps over the image.
            Default: 0.5.
        ignore_color (Sequence[int]): RGB colour of the ignore pixels (255)
            of label maps. Default: (224, 224, 192), entry 255 of the VOC
            palette, the colour the label PNGs show them in.
        title_height (int): pixels of the band above each panel that holds
            its title. Default: 14.
        **kwargs: other arguments of mmengine's ``Visualizer``
            (``fig_save_cfg``, ``fig_show_cfg``).

    Raises:
        ValueError: a ``recipe`` argument: the panel draws the model's
            pseudo label, whose recipe is ``model.test_cfg.pseudo_label``.
    """

    # `name` stays positional: mmengine's ManagerMeta requires it among the
    # positional parameters (it reads them with getfullargspec).
    def __init__(self,
                 name: str = 'visualizer',
                 *,
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[Dict]] = None,
                 save_dir: Optional[str] = None,
                 classes: Optional[List] = None,
                 palette: Optional[List] = None,
                 dataset_name: Optional[str] = None,
                 alpha: float = 0.8,
                 heatmap_alpha: float = 0.5,
                 ignore_color: Sequence[int] = VOC_IGNORE_COLOUR,
                 title_height: int = 14,
                 **kwargs) -> None:
        if 'recipe' in kwargs:
            raise ValueError(
                'visualizer.recipe: WSSSLocalVisualizer draws the pseudo '
                'label the model predicts (pred_sem_seg); set the recipe as '
                'model.test_cfg.pseudo_label, e.g. '
                "dict(type='ThresholdRecipe', bg_threshold=0.2), and remove "
                'visualizer.recipe')
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir,
            classes=classes,
            palette=palette,
            dataset_name=dataset_name,
            alpha=alpha,
            **kwargs)
        if len(ignore_color) != 3:
            raise ValueError('visualizer.ignore_color must be an RGB triple, '
                             f'got {ignore_color!r}')
        self.heatmap_alpha = heatmap_alpha
        self.ignore_color = np.asarray(ignore_color, dtype=np.uint8)
        self.title_height = title_height

    # ------------------------------------------------------------ panels
    def draw_heatmap(
            self,
            heat: np.ndarray,
            image: np.ndarray,
            value_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """A map in jet over the image.

        Args:
            heat (np.ndarray): (h, w) map; resized to the image (bilinear).
            image (np.ndarray): (H, W, 3) uint8 RGB image.
            value_range (tuple[float, float], optional): the values of
                jet's ends: the map is clipped to them, so maps drawn with
                one range compare by colour. Default: None (min-max
                normalised, mmengine's ``draw_featmap``).

        Returns:
            np.ndarray: (H, W, 3) uint8 RGB, the heatmap blended with the
            image at ``heatmap_alpha``.
        """
        heat = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None]
        if heat.shape[1:] != image.shape[:2]:
            heat = F.interpolate(
                heat[None],
                size=image.shape[:2],
                mode='bilinear',
                align_corners=False)[0]
        if value_range is None:
            return self.draw_featmap(
                heat,
                image,
                channel_reduction=None,
                topk=0,
                alpha=self.heatmap_alpha)
        low, high = value_range
        if not high > low:
            raise ValueError(f'value_range must rise, got {value_range}')
        scaled = ((heat[0].numpy() - low) / (high - low)).clip(0, 1)
        colours = cv2.cvtColor(
            cv2.applyColorMap((scaled * 255).astype(np.uint8),
                              cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        return cv2.addWeighted(image, 1 - self.heatmap_alpha, colours,
                               self.heatmap_alpha, 0)

    def draw_label_map(self,
                       image: np.ndarray,
                       labels: np.ndarray,
                       with_labels: bool = True) -> np.ndarray:
        """A label map in the dataset's palette over the image.

        The classes are drawn by mmseg's ``_draw_sem_seg``; the ignore pixels
        (255), which it leaves uncoloured, are blended with ``ignore_color``
        at the same opacity.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB image.
            labels (np.ndarray): (H, W) label ids, 255 ignore.
            with_labels (bool): write the class names on the regions.
                Default: True.

        Returns:
            np.ndarray: (H, W, 3) uint8 RGB.
        """
        classes = self.dataset_meta.get('classes')
        palette = self.dataset_meta.get('palette')
        labels = np.asarray(labels)
        drawn = self._draw_sem_seg(image, PixelData(data=labels[None]),
                                   classes, palette, with_labels)
        ignore = labels == 255
        drawn[ignore] = (image[ignore] * (1 - self.alpha) +
                         self.ignore_color * self.alpha).astype(np.uint8)
        return drawn

    def draw_panels(self, rows: Sequence[Sequence[Panel]]) -> np.ndarray:
        """Tile titled panels: one row of the output per row given.

        Every panel has the size of the first; shorter rows are padded with
        white. Each title is written (mmengine's ``draw_texts``) in a white
        band above its panel; the panels are copied unchanged.

        Args:
            rows (Sequence[Sequence[tuple]]): ``(title, (H, W, 3) uint8 RGB)``
                panels, row by row.

        Returns:
            np.ndarray: ``(len(rows) * (title_height + H), ncols * W, 3)``
            uint8 RGB.
        """
        h, w = rows[0][0][1].shape[:2]
        ncols = max(len(row) for row in rows)
        band = self.title_height
        strips = []
        for row in rows:
            strip = np.full((band + h, ncols * w, 3), 255, dtype=np.uint8)
            for c, (title, panel) in enumerate(row):
                if panel.shape[:2] != (h, w):
                    raise ValueError(
                        f'panel {title!r} is {panel.shape[:2]}, the first '
                        f'is {(h, w)}; all panels must have one size')
                strip[band:, c * w:(c + 1) * w] = panel
            if band > 0:
                self.set_image(strip[:band])
                self.draw_texts([title for title, _ in row],
                                np.asarray([(c * w + 2, 1)
                                            for c in range(len(row))]),
                                font_sizes=max(band * 0.6, 4),
                                colors='black',
                                vertical_alignments='top')
                strip[:band] = self.get_image()
            strips.append(strip)
        return np.concatenate(strips, axis=0)

    # ----------------------------------------------------- the classifier
    def cam_panels(self,
                   image: np.ndarray,
                   data_sample,
                   draw_gt: bool = True,
                   draw_pred: bool = True,
                   with_labels: bool = True) -> List[Panel]:
        """The panels of a CAM classifier's sample.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB image, at the size of the
                sample's maps.
            data_sample (SegDataSample): with ``pred_cams`` (L, H, W) and
                optionally ``gt_img_labels``, ``pred_bg``, ``pred_sem_seg``
                (the pseudo label), ``gt_saliency``, ``gt_sem_seg``.
            draw_gt (bool): include the saliency and GT panels. Default:
                True.
            draw_pred (bool): include the CAM, background and pseudo-label
                panels. Default: True.
            with_labels (bool): write class names on the label maps.
                Default: True.

        Returns:
            list[tuple]: ``(title, panel)`` pairs in drawing order.
        """
        classes = self.dataset_meta.get('classes')
        cams = to_numpy(data_sample.pred_cams.data).astype(np.float32)
        if cams.shape[1:] != image.shape[:2]:
            raise ValueError(
                f'pred_cams are {cams.shape[1:]} but the image is '
                f'{image.shape[:2]}; draw on the image at its original size')
        tags = (
            to_numpy(data_sample.gt_img_labels)
            if 'gt_img_labels' in data_sample else None)
        tag_idx = tagged_classes(cams, tags)
        if classes is not None and len(classes) != len(cams) + 1:
            raise ValueError(
                f'the visualizer has {len(classes)} classes (background '
                f'included) but the sample {len(cams)} CAMs; set its '
                'dataset_meta (or visualizer.classes) to the dataset\'s')
        bg_map = saliency = None
        if 'pred_bg' in data_sample:
            bg_map = to_numpy(data_sample.pred_bg.data)[0]
        if 'gt_saliency' in data_sample:
            saliency = to_numpy(data_sample.gt_saliency.data)[0]
        panels = []
        if draw_pred:
            scores = (
                to_numpy(data_sample.pred_score)
                if 'pred_score' in data_sample else None)
            panels += [(_cam_title(classes, j,
                                   scores), self.draw_heatmap(cams[j], image))
                       for j in tag_idx]
            if bg_map is not None:
                panels.append(('background', self.draw_heatmap(bg_map, image)))
            if 'pred_sem_seg' in data_sample:
                labels = to_numpy(data_sample.pred_sem_seg.data)[0]
                panels.append(('pseudo label',
                               self.draw_label_map(image, labels,
                                                   with_labels)))
        if draw_gt and saliency is not None:
            grey = np.clip(saliency * 255, 0, 255).astype(np.uint8)
            panels.append(('saliency', np.repeat(grey[..., None], 3, -1)))
        if draw_gt and 'gt_sem_seg' in data_sample:
            gt = to_numpy(data_sample.gt_sem_seg.data)[0]
            panels.append(('GT', self.draw_label_map(image, gt, with_labels)))
        return panels

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw a sample and save it to the backends (or ``out_file``).

        A sample with ``pred_cams`` is drawn as the row of panels of
        :meth:`cam_panels` (``draw_gt=False`` leaves out the saliency and
        GT panels, ``draw_pred=False`` the CAMs, background and pseudo
        label); any other is drawn by ``SegLocalVisualizer.add_datasample``.
        The other arguments are those of ``SegLocalVisualizer``.
        """
        if data_sample is None or 'pred_cams' not in data_sample:
            return super().add_datasample(
                name,
                image,
                data_sample=data_sample,
                draw_gt=draw_gt,
                draw_pred=draw_pred,
                show=show,
                wait_time=wait_time,
                out_file=out_file,
                step=step,
                with_labels=with_labels)
        panels = [('image', image)] + self.cam_panels(
            image, data_sample, draw_gt, draw_pred, with_labels)
        drawn = self.draw_panels([panels])
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)


def _name(classes: Optional[Sequence[str]], label: int) -> str:
    return str(classes[label]) if classes is not None else str(label)


def _cam_title(classes: Optional[Sequence[str]], index: int,
               scores: Optional[np.ndarray]) -> str:
    """``CAM <class>``, with the class's score when the sample has one."""
    title = f'CAM {_name(classes, index + 1)}'
    return title if scores is None else f'{title} {scores[index]:.2f}'


__all__ = ['WSSSLocalVisualizer']
