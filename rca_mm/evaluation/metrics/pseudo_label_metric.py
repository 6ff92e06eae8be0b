"""Turn stage-1 CAMs into pseudo labels, write them, and score them.

``tools/test.py CONFIG CKPT --out DIR`` on the training split with this
metric as ``test_evaluator`` is the step between the two WSSS stages: the
classifier's ``predict`` gives CAMs (``pred_cams``), this metric makes the
pseudo label of each image with a registered recipe
(:mod:`rca_mm.evaluation.recipes`), writes it under ``DIR/pseudo_labels/``
and, where the ground truth is known, scores it under the mIoU protocols of
:mod:`rca_mm.evaluation.functional.confusion`.

.. code:: text

    process(sample)                       per image, on every rank
      |- outputs complete under output_dir?  -> re-read the PNG (skipped)
      |- else: CAMs of the tagged classes -> recipe(cams, class_ids, image,
      |        saliency, bg_map)
      |        -> write cams/<name>.npz, overlay, pseudo_labels/<name>.png
      '- confusion_matrix(pseudo label, gt)  if scored
    compute_metrics(results)              rank 0, after mmengine gathers
      '- sum of the matrices -> mIoU_<protocol>, coverage, table
                                  (and output_dir/confusion_matrix.json)
"""
import logging
import os
import os.path as osp
import time
from array import array
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
from mmengine.dist import (broadcast_object_list, collect_results, get_rank,
                           get_world_size, is_main_process)
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.utils import ConfigType
from prettytable import PrettyTable

from rca_mm.fileio import (atomic_write, find_image_list, read_image,
                           read_label_png, read_list_file, save_cam_npz,
                           save_label_png)
from rca_mm.fileio.confusion_json import (CONFUSION_MATRIX_FILE,
                                          save_confusion_matrix)
from rca_mm.registry import METRICS, PSEUDO_LABEL_RECIPES
from rca_mm.visualization.pseudo_label_overlay import draw_pseudo_label_overlay
from ..functional import PROTOCOLS, confusion_matrix, summarize_confusion
from ..recipes.flat_form import flat_key_error, recipe_from_flat_form

# Columns of the per-class table after the IoU of each protocol: title, key
# of summarize_confusion.
TABLE_COLUMNS = (('Precision', 'precision'), ('Recall', 'recall_full'),
                 ('Coverage', 'coverage'))


@METRICS.register_module()
class PseudoLabelMetric(BaseMetric):
    """Pseudo labels from CAMs, written to disk and scored.

    Per image it builds the pseudo label from the CAMs of the image's tagged
    classes with ``recipe``, writes it (when ``output_dir`` is set) and adds
    its confusion matrix against ``gt_sem_seg`` (when present, and the image
    is in ``score_list`` if one is given). All images are labelled; only
    listed ones are scored (VOC: labels for ``train_aug``, scores on
    ``train``).

    Writing is atomic and resumable: an image whose outputs all exist is not
    labelled again, its PNG is re-read for the score. The model still runs
    on it (a metric cannot skip the forward pass). The summary counts such
    an image as skipped when its PNG is older than this export (the
    earliest metric built on any rank). One that another rank wrote during
    the export counts as labelled, whichever rank got there first: the
    distributed sampler pads the last batch with repeats of the first
    images. An image that cannot be
    labelled (unreadable file, missing saliency) is skipped, named in a
    warning at the end and counted in ``num_failed``.

    Metrics (percent), ``mIoU_<protocol>`` for each of ``protocols``:
    ``mIoU_full`` (a 255 pixel of the pseudo label is a miss),
    ``mIoU_confident`` (255 pixels left out, EPS ``evaluate_png.py``, the
    protocol of RCA's reported numbers), ``mIoU_irn`` (255 pixels count as
    background, IRN ``eval_sem_seg.py``); ``coverage`` (share of
    GT-labelled pixels that got a class); and ``num_failed``. A per-class
    table (IoU per protocol, precision, recall, coverage) goes to the log.

    Args:
        recipe (dict | str, optional): the recipe config, e.g.
            ``dict(type='SaliencyRecipe', crf=True, crf_cfg=dict(alpha=4))``,
            built from ``PSEUDO_LABEL_RECIPES``. A name, ``'threshold'`` or
            ``'saliency'``, is the flat form: its settings are keys of the
            metric (``bg_threshold``, ``bg_source``, ``crf``, ...; see
            :mod:`rca_mm.evaluation.recipes.flat_form`) and are translated
            to a recipe config. Default: None (``ThresholdRecipe`` with its
            defaults, or the flat form of ``'threshold'`` when flat keys are
            given).
        protocols (Sequence[str]): the mIoU protocols to report, of
            ``'full'``, ``'confident'``, ``'irn'``. Default: ('full',
            'confident').
        save_cams (bool): also write ``cams/<name>.npz`` (``class_ids``,
            ``cams`` float16) for :file:`tools/analysis_tools/
            sweep_bg_threshold.py`. Default: False.
        score_list (str, optional): file listing the images to score, one
            name (or path, the stem is used) first on each line; absolute, or
            relative to the working directory or to a parent directory of the
            images (e.g. ``'ImageSets/Segmentation/train.txt'``). Default:
            None (score every image with ``gt_sem_seg``).
        output_dir (str, optional): where to write; set by
            ``tools/test.py --out``. Besides the per-image files, the summed
            confusion matrix of the scored images goes to
            ``confusion_matrix.json`` (:mod:`rca_mm.fileio.confusion_json`).
            Default: None (write nothing).
        keep_results (bool): set with ``output_dir`` by ``tools/test.py
            --out`` (mmseg's convention). Files under ``output_dir`` are
            always kept, so it changes nothing here. Default: False.
        show_dir (str, optional): write ``<name>.jpg`` overlays (strongest
            CAM | pseudo label, on the image) here. Default: None.
        ignore_index (int): "no label" value of GT and pseudo labels.
            Default: 255.
        crf_workers (int): processes that run the recipe of a batch's
            images in parallel when it has a CRF (PSA's CRF is
            single-threaded C++ and dominates the export). They start on
            the first batch and serve the whole export. Parallelism is over
            the images of a batch: set ``test_dataloader.batch_size`` to at
            least this. 0: in this process, as the authors' scripts do.
            Default: 0 (the default of DeepLabV2's
            ``model.test_cfg.crf_workers`` as well).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default: 'cpu'.
        collect_dir (str, optional): see mmengine's ``BaseMetric``.
        prefix (str, optional): prefix of the metric names. Default: None.
        **flat_recipe_cfg: the flat form's recipe settings, with ``recipe``
            a name or None only.
    """

    def __init__(self,
                 *,
                 recipe: Union[ConfigType, str, None] = None,
                 protocols: Sequence[str] = ('full', 'confident'),
                 save_cams: bool = False,
                 score_list: Optional[str] = None,
                 output_dir: Optional[str] = None,
                 keep_results: bool = False,
                 show_dir: Optional[str] = None,
                 ignore_index: int = 255,
                 crf_workers: int = 0,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None,
                 **flat_recipe_cfg) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if isinstance(recipe, dict):
            if flat_recipe_cfg:
                raise flat_key_error(list(flat_recipe_cfg))
        else:
            recipe, unused = recipe_from_flat_form(recipe or 'threshold',
                                                   flat_recipe_cfg)
            if unused:
                print_log(
                    f'PseudoLabelMetric: {unused} not used by '
                    f'{recipe["type"]}, ignored',
                    logger='current',
                    level=logging.WARNING)
        self.recipe = PSEUDO_LABEL_RECIPES.build(recipe)
        protocols = tuple(protocols)
        if not protocols or not set(protocols) <= set(PROTOCOLS):
            raise ValueError(f'PseudoLabelMetric: `protocols` must be some of '
                             f'{PROTOCOLS}, got {protocols!r}')
        self.protocols = protocols
        self.save_cams = save_cams
        self.score_list = score_list
        self.output_dir = output_dir
        self.keep_results = keep_results
        self.show_dir = show_dir
        self.ignore_index = ignore_index
        # Lazy: rca_mm.models imports this package's registry users.
        from rca_mm.models.postprocess.dense_crf import WorkerPool
        if int(crf_workers) < 0:
            raise ValueError('PseudoLabelMetric: `crf_workers` must be >= 0, '
                             f'got {crf_workers}')
        self._pool = WorkerPool(int(crf_workers))
        self._serial = WorkerPool(0)
        self._score_names: Optional[set] = None
        self._started = time.time()  # before this rank writes anything

    # ------------------------------------------------------------ per image
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Label, write and score each image of a batch.

        The recipes of the batch's images that are not written yet run in
        ``crf_workers`` processes when the recipe has a CRF. Each image's
        confusion matrix is added to this rank's running sum.

        Args:
            data_batch (dict): the batch from the dataloader (unused: the
                predictions are at the original image size).
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()`` of the
                classifier's ``predict`` output: ``pred_cams`` (L, H, W),
                optional ``gt_img_labels`` (L,; without it, the classes
                with a non-zero CAM), ``pred_bg``, ``gt_sem_seg``,
                ``gt_saliency``; metainfo ``img_path``, ``img_name``.
        """
        entries, jobs = [], []
        for sample in data_samples:
            name = sample.get('img_name') or osp.splitext(
                osp.basename(sample['img_path']))[0]
            if 'pred_cams' not in sample:
                raise KeyError(
                    f'PseudoLabelMetric: sample {name!r} has no `pred_cams`;'
                    ' the test model must be a CAM classifier in predict '
                    'mode')
            num_classes = self._num_classes(sample)
            entry = dict(
                name=name,
                sample=sample,
                num_classes=num_classes,
                scored='gt_sem_seg' in sample
                and self._is_scored(name, sample['img_path']),
                cm=None,
                reread_mtime=None,
                failed=None,
                labels=None)
            try:
                existing = self._read_complete(name)
                if existing is not None:
                    entry['labels'], entry['reread_mtime'] = existing
                else:
                    job = self._recipe_inputs(sample)
                    entry['job'] = job
                    jobs.append(entry)
            except (OSError, ValueError) as err:
                entry['failed'] = f'{type(err).__name__}: {err}'
            entries.append(entry)
        if jobs:
            pool = self._pool if self.recipe.needs_image else self._serial
            outputs = pool.map(_run_recipe, [self.recipe] * len(jobs),
                               [e['job'][1:] for e in jobs])
            for entry, (labels, error) in zip(jobs, outputs):
                entry['labels'], entry['failed'] = labels, error
        for entry in entries:
            if entry['failed'] is None:
                try:
                    self._finish(entry)
                except (OSError, ValueError) as err:
                    entry['failed'] = f'{type(err).__name__}: {err}'
            self._add(
                dict(
                    name=entry['name'],
                    cm=entry['cm'],
                    reread_mtime=entry['reread_mtime'],
                    failed=entry['failed']))

    def _recipe_inputs(self, sample: dict) -> tuple:
        """``(cams_all, cams, class_ids, image, saliency, bg_map)`` of an
        image to label: the recipe's arguments after the CAMs of all
        classes."""
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
        if self.recipe.needs_image or self.show_dir:
            image = _read_rgb(sample['img_path'], cams_all.shape[1:])
        saliency = bg_map = None
        if 'gt_saliency' in sample:
            saliency = _to_numpy(sample['gt_saliency']['data'])[0]
        if 'pred_bg' in sample:
            bg_map = _to_numpy(sample['pred_bg']['data'])[0]
        return cams_all, cams, class_ids, image, saliency, bg_map

    def _finish(self, entry: dict) -> None:
        """Write a new pseudo label; its confusion matrix if scored."""
        if 'job' in entry:
            _, cams, class_ids, image, _, _ = entry['job']
            self._write(entry['name'], entry['labels'], class_ids, cams, image)
        if entry['scored']:
            gt = _to_numpy(entry['sample']['gt_sem_seg']['data'])[0]
            entry['cm'] = confusion_matrix(
                entry['labels'],
                gt,
                entry['num_classes'],
                ignore_index=self.ignore_index)

    # ---------------------------------------------------------- rank state
    @property
    def _state(self) -> dict:
        """This rank's summary so far (``self.results[0]``): the sum of the
        confusion matrices and the counts, plus the latest image's entry
        kept apart (``pending``) until the next image or :meth:`evaluate`
        (it may be the distributed sampler's padding)."""
        if not self.results:
            self.results.append(_empty_state(self._started))
        return self.results[0]

    def _add(self, entry: dict) -> None:
        state = self._state
        if state['pending'] is not None:
            _fold(state, state['pending'])
        state['pending'] = entry
        state['num_seen'] += 1

    def _drop_padding(self, size: int) -> None:
        """Forget the latest image when it is padding: mmengine's
        ``DefaultSampler`` gives rank ``r`` the images ``r, r + world, ...``
        of the dataset padded to a multiple of ``world`` with its first
        images, and ``collect_results`` keeps the first ``size`` of the
        interleaved ranks' results, so a rank holds at most one padded
        image, its last."""
        state = self._state
        last = (state['num_seen'] - 1) * get_world_size() + get_rank()
        if state['pending'] is not None and last >= size:
            state['pending'] = None
            state['num_seen'] -= 1

    def evaluate(self, size: int) -> dict:
        """Reduce the ranks' summaries once and compute the metrics.

        Each rank sends one summary, whose size does not grow with the
        number of images labelled (BaseMetric would gather one entry per
        image).

        Args:
            size (int): the length of the dataset (the sampler's padding
                is left out).

        Returns:
            dict: the metrics, on every rank (see :meth:`compute_metrics`).
        """
        self._drop_padding(size)
        states = collect_results([self._state],
                                 get_world_size(),
                                 self.collect_device,
                                 tmpdir=self.collect_dir)
        if is_main_process():
            metrics = self.compute_metrics(states)
            if self.prefix:
                metrics = {f'{self.prefix}/{k}': v for k, v in metrics.items()}
            outputs = [metrics]
        else:
            outputs = [None]
        broadcast_object_list(outputs)
        self.results.clear()
        return outputs[0]

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

    def _read_complete(self, name: str) -> Optional[tuple]:
        """The written pseudo label and its PNG's modification time when
        all of the image's outputs exist, else None (also when the PNG cannot
        be read: it is written again)."""
        paths = self._paths(name)
        if 'label' not in paths or not all(map(osp.isfile, paths.values())):
            return None
        try:
            return (read_label_png(paths['label']),
                    os.stat(paths['label']).st_mtime)
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
            overlay = draw_pseudo_label_overlay(image, cams, labels)
            atomic_write(paths['overlay'],
                         lambda tmp: _imwrite_or_raise(tmp, overlay))
        if 'label' in paths:
            save_label_png(labels, paths['label'])

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
            path = find_image_list(self.score_list, img_path)
            if path is None:
                raise FileNotFoundError(
                    f'PseudoLabelMetric: `score_list` {self.score_list!r} was'
                    ' found neither as given nor under any parent directory '
                    f'of the images (first image: {img_path!r})')
            self._score_names = set(read_list_file(path, 'score_list'))
        return name in self._score_names

    # ------------------------------------------------------------- summary
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the ranks' confusion matrices and report each protocol.

        Args:
            results (list[dict]): one summary per rank (``self.results``
                of each rank, gathered by :meth:`evaluate`, padding
                removed): ``cm`` (the summed confusion matrix or None),
                ``num_images``, ``num_scored``, ``reread_mtimes`` (of the
                images whose PNG was re-read), ``failed`` (name, reason),
                ``started`` and the latest image's ``pending`` entry.

        Returns:
            dict: ``mIoU_<protocol>`` for each of ``protocols`` and
            ``coverage`` (percent, 2 decimals, as mmseg's ``IoUMetric``;
            absent when no image was scored), and ``num_failed``.
        """
        total = None
        num_images = num_scored = 0
        failed: List[tuple] = []
        reread: List[float] = []
        for state in results:
            state = dict(
                state,
                failed=list(state['failed']),
                reread_mtimes=array('d', state['reread_mtimes']))
            if state['pending'] is not None:
                _fold(state, state['pending'])
            if state['cm'] is not None:
                total = state['cm'] if total is None else total + state['cm']
            num_images += state['num_images']
            num_scored += state['num_scored']
            failed += state['failed']
            reread += state['reread_mtimes']
        started = min((r['started'] for r in results), default=0.)
        skipped = sum(mtime < started for mtime in reread)
        resumed = (f', {skipped} skipped as already written under '
                   f'{self.output_dir} (their PNGs re-read for the scores)'
                   if self.output_dir else '')
        print_log(
            f'PseudoLabelMetric: {num_images} images, '
            f'{num_images - skipped - len(failed)} labelled{resumed}, '
            f'{len(failed)} failed',
            logger='current')
        if failed:
            listing = '\n'.join(f'  {name}: {reason}'
                                for name, reason in failed)
            print_log(
                f'PseudoLabelMetric: {len(failed)} images failed and have '
                f'no pseudo label:\n{listing}',
                logger='current',
                level=logging.WARNING)
        metrics: Dict[str, float] = dict(num_failed=len(failed))
        if total is None:
            print_log(
                'PseudoLabelMetric: no image was scored (none had gt_sem_seg'
                ' or was in score_list)',
                logger='current',
                level=logging.WARNING)
            return metrics
        if self.output_dir:  # for tools/analysis_tools/confusion_matrix.py
            save_confusion_matrix(
                osp.join(self.output_dir, CONFUSION_MATRIX_FILE), total,
                self._class_names(len(total)))
        scores = summarize_confusion(total)
        for protocol in self.protocols:
            metrics[f'mIoU_{protocol}'] = _percent(scores[f'mIoU_{protocol}'])
        metrics['coverage'] = _percent(scores['coverage_all'])
        print_log(
            f'PseudoLabelMetric: {num_scored} images scored, per class '
            f'results:\n{self._table(scores)}',
            logger='current')
        return metrics

    def _class_names(self, num_classes: int) -> List[str]:
        """The dataset's class names, else the class ids as strings."""
        names = (self.dataset_meta or {}).get('classes')
        if names is None:
            names = [str(i) for i in range(num_classes)]
        return list(names)

    def _table(self, scores: dict) -> str:
        table = PrettyTable()
        table.add_column('Class', self._class_names(len(scores['iou_full'])))
        columns = tuple(
            (f'IoU_{p}', f'iou_{p}') for p in self.protocols) + TABLE_COLUMNS
        for title, key in columns:
            table.add_column(title, [_percent(v) for v in scores[key]])
        return table.get_string()


def _empty_state(started: float) -> dict:
    """A rank's summary before its first image (see ``compute_metrics``)."""
    return dict(
        cm=None,
        num_images=0,
        num_scored=0,
        num_seen=0,
        reread_mtimes=array('d'),
        failed=[],
        started=started,
        pending=None)


def _fold(state: dict, entry: dict) -> None:
    """Add one image's entry (``cm``, ``reread_mtime``, ``failed``,
    ``name``) to a rank's summary, in place."""
    state['num_images'] += 1
    if entry['cm'] is not None:
        state['num_scored'] += 1
        cm = entry['cm']
        state['cm'] = cm.copy() if state['cm'] is None else state['cm'] + cm
    if entry['reread_mtime'] is not None:
        state['reread_mtimes'].append(entry['reread_mtime'])
    if entry['failed']:
        state['failed'].append((entry['name'], entry['failed']))


def _run_recipe(recipe, args: tuple) -> tuple:
    """``(labels, None)``, or ``(None, reason)`` when the recipe refuses
    the image; run in a CRF worker or here."""
    cams, class_ids, image, saliency, bg_map = args
    try:
        return recipe(
            cams, class_ids, image=image, saliency=saliency,
            bg_map=bg_map), None
    except (OSError, ValueError) as err:
        return None, f'{type(err).__name__}: {err}'


def _to_numpy(value) -> np.ndarray:
    """A tensor (any device) or array as a numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _percent(value: float) -> float:
    return round(float(value) * 100, 2)


def _read_rgb(path: str, shape: tuple) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB of the CAMs' size, for
    the CRF or the overlay."""
    image, _ = read_image(path, channel_order='rgb', exif_orientation=True)
    if image.shape[:2] != tuple(shape):
        raise ValueError(f'image {path!r} is {image.shape[:2]} but its CAMs '
                         f'are {tuple(shape)} (predict must return CAMs at '
                         'the original size)')
    return image


def _imwrite_or_raise(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise OSError(f'cv2 could not write {path!r}')
