"""Turn stage-1 CAMs into pseudo labels, write them, and score them.

``tools/test.py CONFIG CKPT --out DIR`` on the training split with this
metric as ``test_evaluator`` is the step between the two WSSS stages: the
classifier's ``predict`` gives CAMs (``pred_cams``), this metric makes the
pseudo label of each image with a recipe of
:mod:`rca_mm.evaluation.functional.pseudo_label_recipes`, writes it under
``DIR/pseudo_labels/`` and, where the ground truth is known, scores it under
both mIoU protocols (:mod:`rca_mm.evaluation.functional.confusion`).

.. code:: text

    process(sample)                       per image, on every rank
      |- outputs complete under output_dir?  -> re-read the PNG (skipped)
      |- else: CAMs of the tagged classes
      |        [-> crf_refine_cams]  -> threshold_recipe | saliency_recipe
      |        -> write cams/<name>.npz, pseudo_labels/<name>.png, overlay
      '- confusion_matrix(pseudo label, gt)  if scored
    compute_metrics(results)              rank 0, after mmengine gathers
      '- sum of the matrices -> mIoU_full, mIoU_confident, coverage, table
"""
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import mmcv
import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from prettytable import PrettyTable

from rca_mm.registry import METRICS
from rca_mm.testing.voc_layout import save_palette_png, voc_palette
from ..functional import (atomic_write, confusion_matrix, crf_refine_cams,
                          read_label_png, saliency_recipe, save_cam_npz,
                          summarize_confusion, threshold_recipe)

RECIPES = ('threshold', 'saliency')
BG_SOURCES = ('threshold', 'map')
# Columns of the per-class table: title, key of summarize_confusion.
TABLE_COLUMNS = (('IoU_full', 'iou_full'), ('IoU_confident', 'iou_confident'),
                 ('Precision', 'precision'), ('Recall', 'recall_full'),
                 ('Coverage', 'coverage'))


@METRICS.register_module()
class PseudoLabelMetric(BaseMetric):
    """Pseudo labels from CAMs, written to disk and scored two ways.

    Per image it builds the pseudo label from the CAMs of the image's tagged
    classes, writes it (when ``output_dir`` is set) and adds its confusion
    matrix against ``gt_sem_seg`` (when present, and the image is in
    ``score_list`` if one is given). All images are labelled; only listed
    ones are scored (VOC: labels for ``train_aug``, scores on ``train``).

    Writing is atomic and resumable: an image whose outputs all exist is not
    labelled again, its PNG is re-read for the score. The model still runs
    on it (a metric cannot skip the forward pass). An image that cannot be
    labelled (unreadable file, missing saliency) is skipped, named in a
    warning at the end and counted in ``num_failed``.

    Metrics (percent): ``mIoU_full`` (a 255 pixel of the pseudo label is a
    miss), ``mIoU_confident`` (255 pixels left out, EPS ``evaluate_png.py``,
    the protocol of RCA's reported numbers), ``coverage`` (share of
    GT-labelled pixels that got a class); and ``num_failed``. A per-class
    table (IoU both ways, precision, recall, coverage) goes to the log.

    Args:
        recipe (str): ``'threshold'`` or ``'saliency'``. Default:
            'threshold'.
        bg_threshold (float): background score of the threshold recipe.
            Default: 0.2 (EPS ``infer.py --thr``).
        bg_source (str): threshold recipe's background: ``'threshold'`` (the
            constant) or ``'map'`` (the model's ``pred_bg``, EPS). Default:
            'threshold'.
        conflict_threshold (float): saliency recipe, several classes above
            it -> 255. Default: 0.9 (OAA/RCA label scripts).
        saliency_bg_threshold (float): saliency recipe, background needs
            saliency below it (saliency in [0, 1]). Default: 32 / 255
            (OAA/RCA).
        cam_confident_threshold (float): saliency recipe, background needs
            every CAM at most this. Default: 0.8 (OAA/RCA).
        cam_floor (float): saliency recipe, CAM values below it count as 0.
            Default: 0 (RCA; OAA uses 0.3).
        min_fg_ratio (float): saliency recipe, images with less foreground
            are ignored entirely. Default: 0.01 (OAA/RCA).
        crf (bool): refine the CAMs with PSA's dense CRF before the recipe
            (needs the image file at ``img_path``). Default: False.
        crf_cfg (dict, optional): keyword arguments of
            :func:`crf_refine_cams` (``alpha``, ``num_iters``, kernel
            parameters) overriding its PSA defaults. Default: None.
        save_cams (bool): also write ``cams/<name>.npz`` (``class_ids``,
            ``cams`` float16) for :file:`tools/analysis_tools/
            sweep_bg_threshold.py`. Default: False.
        score_list (str, optional): file listing the images to score, one
            name (or path, the stem is used) first on each line; absolute, or
            relative to the working directory or to a parent directory of the
            images (e.g. ``'ImageSets/Segmentation/train.txt'``). Default:
            None (score every image with ``gt_sem_seg``).
        output_dir (str, optional): where to write; set by
            ``tools/test.py --out``. Default: None (write nothing).
        keep_results (bool): set with ``output_dir`` by ``tools/test.py
            --out`` (mmseg's convention). Files under ``output_dir`` are
            always kept, so it changes nothing here. Default: False.
        show_dir (str, optional): write ``<name>.jpg`` overlays (strongest
            CAM | pseudo label, on the image) here. Default: None.
        ignore_index (int): "no label" value of GT and pseudo labels.
            Default: 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default: 'cpu'.
        collect_dir (str, optional): see mmengine's ``BaseMetric``.
        prefix (str, optional): prefix of the metric names. Default: None.
    """

    def __init__(self,
                 *,
                 recipe: str = 'threshold',
                 bg_threshold: float = 0.2,
                 bg_source: str = 'threshold',
                 conflict_threshold: float = 0.9,
                 saliency_bg_threshold: float = 32 / 255,
                 cam_confident_threshold: float = 0.8,
                 cam_floor: float = 0.,
                 min_fg_ratio: float = 0.01,
                 crf: bool = False,
                 crf_cfg: Optional[dict] = None,
                 save_cams: bool = False,
                 score_list: Optional[str] = None,
                 output_dir: Optional[str] = None,
                 keep_results: bool = False,
                 show_dir: Optional[str] = None,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if recipe not in RECIPES:
            raise ValueError(f'PseudoLabelMetric: `recipe` must be one of '
                             f'{RECIPES}, got {recipe!r}')
        if bg_source not in BG_SOURCES:
            raise ValueError(f'PseudoLabelMetric: `bg_source` must be one of '
                             f'{BG_SOURCES}, got {bg_source!r}')
        if bg_source == 'map' and recipe != 'threshold':
            raise ValueError("PseudoLabelMetric: bg_source='map' belongs to "
                             "recipe='threshold'; the saliency recipe takes "
                             'background from the saliency map')
        fractions = dict(
            bg_threshold=bg_threshold,
            conflict_threshold=conflict_threshold,
            saliency_bg_threshold=saliency_bg_threshold,
            cam_confident_threshold=cam_confident_threshold,
            cam_floor=cam_floor,
            min_fg_ratio=min_fg_ratio)
        for key, value in fractions.items():
            if not 0 <= value <= 1:
                raise ValueError(f'PseudoLabelMetric: `{key}` must be in '
                                 f'[0, 1], got {value}')
        self.recipe = recipe
        self.bg_threshold = bg_threshold
        self.bg_source = bg_source
        self.saliency_cfg = dict(
            conflict_threshold=conflict_threshold,
            saliency_bg_threshold=saliency_bg_threshold,
            cam_confident_threshold=cam_confident_threshold,
            cam_floor=cam_floor,
            min_fg_ratio=min_fg_ratio)
        self.crf = crf
        self.crf_cfg = dict(crf_cfg or {})
        self.save_cams = save_cams
        self.score_list = score_list
        self.output_dir = output_dir
        self.keep_results = keep_results
        self.show_dir = show_dir
        self.ignore_index = ignore_index
        self._score_names: Optional[set] = None

    # ------------------------------------------------------------ per image
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Label, write and score each image of a batch.

        Args:
            data_batch (dict): the batch from the dataloader (unused: the
                predictions are at the original image size).
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()`` of the
                classifier's ``predict`` output: ``pred_cams`` (L, H, W),
                optional ``gt_img_labels`` (L,; without it, the classes
                with a non-zero CAM), ``pred_bg``, ``gt_sem_seg``,
                ``gt_saliency``; metainfo ``img_path``, ``img_name``.
        """
        for sample in data_samples:
            name = sample.get('img_name') or osp.splitext(
                osp.basename(sample['img_path']))[0]
            if 'pred_cams' not in sample:
                raise KeyError(
                    f'PseudoLabelMetric: sample {name!r} has no `pred_cams`;'
                    ' the test model must be a CAM classifier in predict '
                    'mode')
            num_classes = self._num_classes(sample)
            scored = 'gt_sem_seg' in sample and self._is_scored(
                name, sample['img_path'])
            entry = dict(name=name, cm=None, skipped=False, failed=None)
            try:
                labels, entry['skipped'] = self._pseudo_label(name, sample)
                if scored:
                    gt = _to_numpy(sample['gt_sem_seg']['data'])[0]
                    entry['cm'] = confusion_matrix(
                        labels,
                        gt,
                        num_classes,
                        ignore_index=self.ignore_index)
            except (OSError, ValueError) as err:
                entry['failed'] = f'{type(err).__name__}: {err}'
            self.results.append(entry)

    def _pseudo_label(self, name: str, sample: dict) -> tuple:
        """The image's pseudo label, and whether it was read back rather
        than made (resume)."""
        existing = self._read_complete(name)
        if existing is not None:
            return existing, True
        cams_all = _to_numpy(sample['pred_cams']['data']).astype(np.float32)
        if 'gt_img_labels' in sample:
            tags = _to_numpy(sample['gt_img_labels']).reshape(-1)
            if tags.shape[0] != cams_all.shape[0]:
                raise ValueError(f'{tags.shape[0]} image tags but '
                                 f'{cams_all.shape[0]} CAMs')
            tag_idx = np.flatnonzero(tags > 0.5)
        else:  # untagged classes have all-zero CAMs
            tag_idx = np.flatnonzero(
                cams_all.reshape(len(cams_all), -1).max(axis=1) > 0)
        class_ids, cams = tag_idx + 1, cams_all[tag_idx]
        image = None
        if self.crf or self.show_dir:
            image = _read_rgb(sample['img_path'], cams_all.shape[1:])
        refined = cams
        if self.crf:
            refined = crf_refine_cams(image, cams, **self.crf_cfg)
        if self.recipe == 'saliency':
            if 'gt_saliency' not in sample:
                raise ValueError(
                    "recipe='saliency' needs `gt_saliency` in the "
                    'sample; load the saliency map in the test pipeline')
            saliency = _to_numpy(sample['gt_saliency']['data'])[0]
            labels = saliency_recipe(refined, class_ids, saliency,
                                     **self.saliency_cfg)
        else:
            bg_map = None
            if self.bg_source == 'map':
                if 'pred_bg' not in sample:
                    raise ValueError(
                        "bg_source='map' needs `pred_bg` from the "
                        'model (an EPS head)')
                bg_map = _to_numpy(sample['pred_bg']['data'])[0]
            labels = threshold_recipe(
                refined,
                class_ids,
                bg_threshold=self.bg_threshold,
                bg_map=bg_map)
        self._write(name, labels, class_ids, cams, image)
        return labels, False

    def _paths(self, name: str) -> Dict[str, str]:
        """The files an image's outputs go to (none without output_dir)."""
        paths = {}
        if self.output_dir:
            paths['label'] = osp.join(self.output_dir, 'pseudo_labels',
                                      name + '.png')
            if self.save_cams:
                paths['cams'] = osp.join(self.output_dir, 'cams',
                                         name + '.npz')
        if self.show_dir:
            paths['overlay'] = osp.join(self.show_dir, name + '.jpg')
        return paths

    def _read_complete(self, name: str) -> Optional[np.ndarray]:
        """The written pseudo label when all of the image's outputs exist,
        else None (also when the PNG cannot be read: it is written again)."""
        paths = self._paths(name)
        if 'label' not in paths or not all(map(osp.isfile, paths.values())):
            return None
        try:
            return read_label_png(paths['label'])
        except (OSError, ValueError) as err:
            print_log(
                f'PseudoLabelMetric: rewriting {paths["label"]} ({err})',
                logger='current')
            return None

    def _write(self, name: str, labels: np.ndarray, class_ids: np.ndarray,
               cams: np.ndarray, image: Optional[np.ndarray]) -> None:
        """Write the outputs, each atomically; the PNG, which marks the
        image done, after the CAMs."""
        paths = self._paths(name)
        for path in paths.values():
            os.makedirs(osp.dirname(path), exist_ok=True)
        if 'cams' in paths:
            save_cam_npz(paths['cams'], class_ids, cams)
        if 'overlay' in paths:
            overlay = _overlay(image, cams, labels)
            atomic_write(paths['overlay'],
                         lambda tmp: _imwrite_or_raise(tmp, overlay))
        if 'label' in paths:
            atomic_write(paths['label'],
                         lambda tmp: save_palette_png(labels, tmp))

    def _num_classes(self, sample: dict) -> int:
        """L + 1: the dataset's classes, else the CAM count + background."""
        num_cams = len(sample['pred_cams']['data'])
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None and len(classes) != num_cams + 1:
            raise ValueError(
                f'PseudoLabelMetric: the dataset has {len(classes)} classes '
                f'(background included) but the model gives {num_cams} '
                'CAMs; they must differ by one')
        return num_cams + 1

    def _is_scored(self, name: str, img_path: str) -> bool:
        if self.score_list is None:
            return True
        if self._score_names is None:
            path = _find_list(self.score_list, img_path)
            with open(path) as f:
                self._score_names = {
                    osp.splitext(osp.basename(line.split()[0]))[0]
                    for line in f if line.strip()
                }
        return name in self._score_names

    # ------------------------------------------------------------- summary
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the confusion matrices and report both protocols.

        Args:
            results (list[dict]): the per-image entries of :meth:`process`
                (gathered from all ranks, padding removed).

        Returns:
            dict: ``mIoU_full``, ``mIoU_confident``, ``coverage`` (percent,
            2 decimals, as mmseg's ``IoUMetric``; absent when no image was
            scored) and ``num_failed``.
        """
        failed = [r for r in results if r['failed']]
        skipped = sum(r['skipped'] for r in results)
        resumed = (f', {skipped} skipped as already written under '
                   f'{self.output_dir} (their PNGs re-read for the scores)'
                   if self.output_dir else '')
        print_log(
            f'PseudoLabelMetric: {len(results)} images, '
            f'{len(results) - skipped - len(failed)} labelled{resumed}, '
            f'{len(failed)} failed',
            logger='current')
        if failed:
            listing = '\n'.join(f'  {r["name"]}: {r["failed"]}'
                                for r in failed)
            print_log(
                f'PseudoLabelMetric: {len(failed)} images failed and have '
                f'no pseudo label:\n{listing}',
                logger='current',
                level=logging.WARNING)
        metrics: Dict[str, float] = dict(num_failed=len(failed))
        matrices = [r['cm'] for r in results if r['cm'] is not None]
        if not matrices:
            print_log(
                'PseudoLabelMetric: no image was scored (none had gt_sem_seg'
                ' or was in score_list)',
                logger='current',
                level=logging.WARNING)
            return metrics
        scores = summarize_confusion(np.sum(matrices, axis=0))
        metrics.update(
            mIoU_full=_percent(scores['mIoU_full']),
            mIoU_confident=_percent(scores['mIoU_confident']),
            coverage=_percent(scores['coverage_all']))
        print_log(
            f'PseudoLabelMetric: {len(matrices)} images scored, per class '
            f'results:\n{self._table(scores)}',
            logger='current')
        return metrics

    def _table(self, scores: dict) -> str:
        names = (self.dataset_meta or {}).get('classes')
        if names is None:
            names = [str(i) for i in range(len(scores['iou_full']))]
        table = PrettyTable()
        table.add_column('Class', list(names))
        for title, key in TABLE_COLUMNS:
            table.add_column(title, [_percent(v) for v in scores[key]])
        return table.get_string()


def _to_numpy(value) -> np.ndarray:
    """A tensor (any device) or array as a numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _percent(value: float) -> float:
    return round(float(value) * 100, 2)


def _read_rgb(path: str, shape: tuple) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB of the CAMs' size."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} does not exist (needed for '
                                'the CRF or the overlay)')
    image = mmcv.imread(path, channel_order='rgb')
    if image is None:
        raise OSError(f'image {path!r} cannot be read')
    if image.shape[:2] != tuple(shape):
        raise ValueError(f'image {path!r} is {image.shape[:2]} but its CAMs '
                         f'are {tuple(shape)} (predict must return CAMs at '
                         'the original size)')
    return np.ascontiguousarray(image)


def _overlay(image: np.ndarray, cams: np.ndarray,
             labels: np.ndarray) -> np.ndarray:
    """Side by side, BGR: the strongest CAM (jet) and the pseudo label
    (VOC palette) blended half and half with the image."""
    bgr = np.ascontiguousarray(image[..., ::-1])
    strongest = cams.max(axis=0) if len(cams) else np.zeros(labels.shape)
    heat = cv2.applyColorMap(
        np.clip(strongest * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = np.ascontiguousarray(voc_palette()[labels][..., ::-1])
    return np.concatenate([
        cv2.addWeighted(bgr, 0.5, heat, 0.5, 0),
        cv2.addWeighted(bgr, 0.5, colours, 0.5, 0)
    ],
                          axis=1)


def _imwrite_or_raise(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise OSError(f'cv2 could not write {path!r}')


def _find_list(score_list: str, img_path: str) -> str:
    """Resolve ``score_list``: absolute, or relative to the working
    directory, or to the nearest parent directory of ``img_path`` holding
    it (the dataset root, whatever ``data_root`` the config was given)."""
    candidates = [score_list]
    if not osp.isabs(score_list):
        parent = osp.dirname(osp.abspath(img_path))
        while True:
            candidates.append(osp.join(parent, score_list))
            if osp.dirname(parent) == parent:
                break
            parent = osp.dirname(parent)
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f'PseudoLabelMetric: `score_list` {score_list!r} was found neither '
        'as given nor under any parent directory of the images (first '
        f'image: {img_path!r})')
