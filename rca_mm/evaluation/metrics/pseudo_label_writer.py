"""Write pseudo labels (and CAMs) to disk, as a metric of the test
evaluator.

``tools/test.py CONFIG CKPT --out DIR`` appends this metric to the test
evaluator (as mmpretrain's ``--out`` appends its dump metric): each image's
``pred_sem_seg`` from the classifier (``model.test_cfg.pseudo_label``) goes
to ``DIR/pseudo_labels/<name>.png``, with ``--save-cams`` its tagged
classes' CAMs to ``DIR/cams/<name>.npz`` (for
:file:`tools/analysis_tools/sweep_bg_threshold.py`).

.. code:: text

    process(sample)                per image, on every rank
      '- cams/<name>.npz (save_cams), then pseudo_labels/<name>.png,
         each atomically; a failed write -> (name, reason)
    evaluate(size)                 the ranks' failures, once per name
      '- num_failed, the failures named in a warning
"""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from rca_mm.fileio import save_cam_npz, save_label_png
from rca_mm.registry import METRICS
from rca_mm.utils.arrays import to_numpy
from ..functional import tagged_classes
from .gather import compute_on_main


@METRICS.register_module()
class PseudoLabelWriter(BaseMetric):
    """Write each image's pseudo label (and CAMs) under ``output_dir``.

    Files, each written atomically (a crash leaves the old file or none,
    never a partial one); the PNG after the CAMs:

    .. code:: text

        output_dir/pseudo_labels/<img_name>.png   palette PNG, 0 background,
                                                  1..L classes, 255 ignore
        output_dir/cams/<img_name>.npz            with save_cams: class_ids,
                                                  cams (float16) of the tags

    An image without ``pred_sem_seg`` (the model could not label it; the
    scoring metric names it) is not written. An image whose files cannot be
    written (no permission, disk full) is named in a warning and counted in
    ``num_failed``; the other images are written. Every run writes every
    image again (the files are the same for the same checkpoint and
    config).

    Args:
        output_dir (str): the directory to write under (``tools/test.py
            --out``).
        save_cams (bool): also write ``cams/<name>.npz`` (``class_ids``,
            ``cams`` float16) for :file:`tools/analysis_tools/
            sweep_bg_threshold.py` (``tools/test.py --save-cams``).
            Default: False.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Default: 'cpu'.
        collect_dir (str, optional): see mmengine's ``BaseMetric``.
        prefix (str, optional): prefix of ``num_failed``. Default:
            ``'pseudo_label_writer'``.
    """
    default_prefix: Optional[str] = 'pseudo_label_writer'

    def __init__(self,
                 *,
                 output_dir: str,
                 save_cams: bool = False,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.output_dir = output_dir
        self.save_cams = save_cams

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Write each labelled image's files; keep the failures.

        Args:
            data_batch (dict): the batch from the dataloader (unused).
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()`` of the
                classifier's ``predict`` output: ``pred_sem_seg`` (1, H, W),
                ``pred_cams`` (L, H, W), optional ``gt_img_labels``;
                metainfo ``img_path``, ``img_name``.
        """
        for sample in data_samples:
            if 'pred_sem_seg' not in sample:
                continue
            name = sample.get('img_name') or osp.splitext(
                osp.basename(sample['img_path']))[0]
            try:
                self._write(name, sample)
            except (OSError, ValueError) as err:
                self.results.append((name, f'{type(err).__name__}: {err}'))

    def _write(self, name: str, sample: dict) -> None:
        paths = self._paths(name)
        if 'cams' in paths:
            cams = to_numpy(sample['pred_cams']['data']).astype(np.float32)
            tags = to_numpy(sample['gt_img_labels']) \
                if 'gt_img_labels' in sample else None
            idx = tagged_classes(cams, tags)
            save_cam_npz(paths['cams'], idx + 1, cams[idx])
        labels = to_numpy(sample['pred_sem_seg']['data'])[0]
        save_label_png(labels, paths['label'])

    def _paths(self, name: str) -> Dict[str, str]:
        paths = dict(
            label=osp.join(self.output_dir, 'pseudo_labels', name + '.png'))
        if self.save_cams:
            paths['cams'] = osp.join(self.output_dir, 'cams', name + '.npz')
        return paths

    def evaluate(self, size: int) -> dict:
        """Gather the ranks' failures and report them once.

        Args:
            size (int): the length of the dataset (unused: a padded repeat
                of an image writes the same files, and its failure is
                counted once by name).

        Returns:
            dict: ``num_failed`` (with the prefix), on every rank.
        """
        return compute_on_main(self, list(self.results))

    def compute_metrics(self, results: List[list]) -> Dict[str, int]:
        """The failed writes of all ranks, each image once.

        Args:
            results (list[list]): per rank, its ``(name, reason)`` pairs.

        Returns:
            dict: ``num_failed``.
        """
        failed = dict(pair for rank in results for pair in rank)
        if failed:
            listing = '\n'.join(f'  {name}: {reason}'
                                for name, reason in sorted(failed.items()))
            print_log(
                f'PseudoLabelWriter: {len(failed)} images could not be '
                f'written under {self.output_dir}:\n{listing}',
                logger='current',
                level=logging.WARNING)
        return dict(num_failed=len(failed))
