"""Score pseudo labels: mmseg's ``IoUMetric`` with the WSSS protocols.

``tools/test.py CONFIG CKPT --out DIR`` on the training split is the step
between the two WSSS stages: the classifier's ``predict`` gives CAMs
(``pred_cams``) and, with ``model.test_cfg.pseudo_label``, each image's
pseudo label (``pred_sem_seg``); this metric scores them where the ground
truth is known, under the mIoU protocols of
:mod:`rca_mm.evaluation.functional.confusion`; ``PseudoLabelWriter``
(:mod:`.pseudo_label_writer`) writes them under ``DIR``.

.. code:: text

    process(sample)                       per image, on every rank
      '- confusion_matrix(pred_sem_seg, gt_sem_seg)  if scored
         (or the image's pseudo_label_error, counted as failed)
    compute_metrics(results)              rank 0, after mmengine gathers
      '- sum of the matrices -> mIoU_<protocol>, coverage, table
                                  (and output_dir/confusion_matrix.json)
"""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dist import get_rank, get_world_size
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from prettytable import PrettyTable

from rca_mm.fileio import find_image_list, read_list_file
from rca_mm.fileio.confusion_json import (CONFUSION_MATRIX_FILE,
                                          save_confusion_matrix)
from rca_mm.registry import METRICS
from rca_mm.utils.arrays import to_numpy
from ..functional import PROTOCOLS, confusion_matrix, summarize_confusion
from .gather import compute_on_main

# Columns of the per-class table after the IoU of each protocol: title, key
# of summarize_confusion.
TABLE_COLUMNS = (('Precision', 'precision'), ('Recall', 'recall_full'),
                 ('Coverage', 'coverage'))
# Settings of the model's recipe and of tools/test.py's outputs: refused
# with the key to use.
RECIPE_KEYS = ('recipe', 'bg_threshold', 'bg_source', 'conflict_threshold',
               'saliency_bg_threshold', 'cam_confident_threshold', 'cam_floor',
               'min_fg_ratio', 'crf', 'crf_cfg', 'crf_workers')
WRITER_KEYS = ('save_cams', 'show_dir')


@METRICS.register_module()
class PseudoLabelMetric(BaseMetric):
    """The mIoU of pseudo labels, under the WSSS protocols.

    Per image it adds the confusion matrix of ``pred_sem_seg`` (the
    classifier's pseudo label, ``model.test_cfg.pseudo_label``) against
    ``gt_sem_seg`` when the image has a ground truth and is in
    ``score_list`` if one is given (VOC: labels for ``train_aug``, scores
    on ``train``). An image the model could not label (metainfo
    ``pseudo_label_error``: unreadable file, missing saliency) is named in
    a warning at the end and counted in ``num_failed``.

    Metrics (percent), ``mIoU_<protocol>`` for each of ``protocols``:
    ``mIoU_full`` (a 255 pixel of the pseudo label is a miss),
    ``mIoU_confident`` (255 pixels left out, EPS ``evaluate_png.py``, the
    protocol of RCA's reported numbers), ``mIoU_irn`` (255 pixels count as
    background, IRN ``eval_sem_seg.py``); ``coverage`` (share of
    GT-labelled pixels that got a class); and ``num_failed``. A per-class
    table (IoU per protocol, precision, recall, coverage) goes to the log.

    Args:
        protocols (Sequence[str]): the mIoU protocols to report, of
            ``'full'``, ``'confident'``, ``'irn'``. Default: ('full',
            'confident').
        score_list (str, optional): file listing the images to score, one
            name (or path, the stem is used) first on each line; absolute, or
            relative to the working directory or to a parent directory of the
            images (e.g. ``'ImageSets/Segmentation/train.txt'``). Default:
            None (score every image with ``gt_sem_seg``).
        output_dir (str, optional): where the summed confusion matrix of the
            scored images goes (``confusion_matrix.json``,
            :mod:`rca_mm.fileio.confusion_json`); set by ``tools/test.py
            --out``. Default: None (write nothing).
        keep_results (bool): mmseg's convention, set with ``output_dir``;
            changes nothing here. Default: False.
        ignore_index (int): "no label" value of GT and pseudo labels.
            Default: 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default: 'cpu'.
        collect_dir (str, optional): see mmengine's ``BaseMetric``.
        prefix (str, optional): prefix of the metric names. Default: None.
        **moved: refused with the key they belong to now: the recipe
            (``recipe``, ``bg_threshold``, ``crf``, ...,
            ``crf_workers``) is ``model.test_cfg.pseudo_label``; writing
            (``save_cams``) is ``tools/test.py --out DIR --save-cams``.
    """

    def __init__(self,
                 *,
                 protocols: Sequence[str] = ('full', 'confident'),
                 score_list: Optional[str] = None,
                 output_dir: Optional[str] = None,
                 keep_results: bool = False,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None,
                 **moved) -> None:
        _refuse_moved_keys(moved)
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        protocols = tuple(protocols)
        if not protocols or not set(protocols) <= set(PROTOCOLS):
            raise ValueError(f'PseudoLabelMetric: `protocols` must be some of '
                             f'{PROTOCOLS}, got {protocols!r}')
        self.protocols = protocols
        self.score_list = score_list
        self.output_dir = output_dir
        self.keep_results = keep_results
        self.ignore_index = ignore_index
        self._score_names: Optional[set] = None

    # ------------------------------------------------------------ per image
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Add each image's confusion matrix to this rank's running sum.

        Args:
            data_batch (dict): the batch from the dataloader (unused: the
                predictions are at the original image size).
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()`` of the
                classifier's ``predict`` output: ``pred_sem_seg`` (1, H, W)
                or metainfo ``pseudo_label_error``, optional ``gt_sem_seg``;
                metainfo ``img_path``, ``img_name``.
        """
        for sample in data_samples:
            name = sample.get('img_name') or osp.splitext(
                osp.basename(sample['img_path']))[0]
            failed, cm = sample.get('pseudo_label_error'), None
            if failed is None:
                if 'pred_sem_seg' not in sample:
                    raise KeyError(
                        f'PseudoLabelMetric: sample {name!r} has no '
                        '`pred_sem_seg`; set the recipe in '
                        "model.test_cfg.pseudo_label (e.g. dict(type="
                        "'ThresholdRecipe', bg_threshold=0.2))")
                num_classes = self._num_classes(sample)
                if 'gt_sem_seg' in sample and self._is_scored(
                        name, sample['img_path']):
                    cm = confusion_matrix(
                        to_numpy(sample['pred_sem_seg']['data'])[0],
                        to_numpy(sample['gt_sem_seg']['data'])[0],
                        num_classes,
                        ignore_index=self.ignore_index)
            self._add(dict(name=name, cm=cm, failed=failed))

    # ---------------------------------------------------------- rank state
    @property
    def _state(self) -> dict:
        """This rank's summary so far (``self.results[0]``): the sum of the
        confusion matrices and the counts, plus the latest image's entry
        kept apart (``pending``) until the next image or :meth:`evaluate`
        (it may be the distributed sampler's padding)."""
        if not self.results:
            self.results.append(_empty_state())
        return self.results[0]

    def _add(self, entry: dict) -> None:
        state = self._state
        if state['pending'] is not None:
            _fold(state, state['pending'])
        state['pending'] = entry

    def _drop_padding(self, size: int) -> None:
        """Forget the latest image when it is padding: mmengine's
        ``DefaultSampler`` gives rank ``r`` the images ``r, r + world, ...``
        of the dataset padded to a multiple of ``world`` with its first
        images, and ``collect_results`` keeps the first ``size`` of the
        interleaved ranks' results, so a rank holds at most one padded
        image, its last (the one after the ``num_images`` folded ones)."""
        state = self._state
        last = state['num_images'] * get_world_size() + get_rank()
        if state['pending'] is not None and last >= size:
            state['pending'] = None

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
        return compute_on_main(self, self._state)

    def _num_classes(self, sample: dict) -> int:
        """L + 1: the dataset's classes, else the CAM count + background."""
        classes = (self.dataset_meta or {}).get('classes')
        num_cams = len(sample['pred_cams']['data']) \
            if 'pred_cams' in sample else None
        if classes is None and num_cams is None:
            raise ValueError(
                'PseudoLabelMetric: the number of classes is unknown: the '
                'dataset has no `classes` and the sample no `pred_cams`')
        if classes is not None and num_cams is not None \
                and len(classes) != num_cams + 1:
            raise ValueError(
                f'PseudoLabelMetric: the dataset has {len(classes)} classes '
                f'(background included) but the model gives {num_cams} '
                'CAMs; they must differ by one')
        return len(classes) if classes is not None else num_cams + 1

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
                ``num_images``, ``num_scored``, ``failed`` (name, reason)
                and the latest image's ``pending`` entry.

        Returns:
            dict: ``mIoU_<protocol>`` for each of ``protocols`` and
            ``coverage`` (percent, 2 decimals, as mmseg's ``IoUMetric``;
            absent when no image was scored), and ``num_failed``.
        """
        total = None
        num_images = num_scored = 0
        failed: List[tuple] = []
        for state in results:
            state = dict(state, failed=list(state['failed']))
            if state['pending'] is not None:
                _fold(state, state['pending'])
            if state['cm'] is not None:
                total = state['cm'] if total is None else total + state['cm']
            num_images += state['num_images']
            num_scored += state['num_scored']
            failed += state['failed']
        print_log(
            f'PseudoLabelMetric: {num_images} images, '
            f'{num_images - len(failed)} labelled, {len(failed)} failed',
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


def _empty_state() -> dict:
    """A rank's summary before its first image (see ``compute_metrics``)."""
    return dict(cm=None, num_images=0, num_scored=0, failed=[], pending=None)


def _fold(state: dict, entry: dict) -> None:
    """Add one image's entry (``cm``, ``failed``, ``name``) to a rank's
    summary, in place."""
    state['num_images'] += 1
    if entry['cm'] is not None:
        state['num_scored'] += 1
        cm = entry['cm']
        state['cm'] = cm.copy() if state['cm'] is None else state['cm'] + cm
    if entry['failed']:
        state['failed'].append((entry['name'], entry['failed']))


def _refuse_moved_keys(moved: dict) -> None:
    """Raise on settings the metric no longer takes, naming their key."""
    if not moved:
        return
    keys = sorted(moved)
    recipe = [k for k in keys if k in RECIPE_KEYS]
    if recipe:
        raise ValueError(
            f'PseudoLabelMetric: {recipe} are settings of the pseudo-label '
            'recipe, which the model applies: set them in '
            "model.test_cfg.pseudo_label (e.g. dict(type='SaliencyRecipe', "
            'crf=True, crf_cfg=dict(alpha=4))) and crf_workers in '
            'model.test_cfg.crf_workers, and remove them from '
            'test_evaluator')
    writer = [k for k in keys if k in WRITER_KEYS]
    if writer:
        raise ValueError(
            f'PseudoLabelMetric: {writer} are no longer settings of the '
            'metric: tools/test.py --out DIR writes the pseudo labels, '
            '--save-cams also the CAMs, --show-dir the drawings; remove them '
            'from test_evaluator')
    raise TypeError(f'PseudoLabelMetric got unexpected keyword arguments '
                    f'{keys}')


def _percent(value: float) -> float:
    return round(float(value) * 100, 2)
