"""Sweep the background threshold of the threshold recipe over saved CAMs.

WSSS papers (PSA, IRN, EPS) pick the background threshold of their CAMs by the
pseudo-label mIoU on the training images with ground truth. This reads the CAMs
that ``tools/test.py --out DIR --save-cams`` wrote (``PseudoLabelWriter``:
``DIR/cams/<name>.npz``) and the ground-truth PNGs, labels every image at every
threshold with ``ThresholdRecipe`` objects built from ``PSEUDO_LABEL_RECIPES``
as the model builds ``model.test_cfg.pseudo_label`` (with ``--config``, that
recipe with its ``bg_threshold`` varied), scores it with the metric's confusion
matrix, and prints mIoU per threshold under both protocols (they agree here:
the threshold recipe leaves no pixel at 255) and the best threshold. Two
class-agnostic columns say where the maps fire: the precision and the recall of
the predicted foreground against the ground-truth foreground (low precision at
a foreground share close to the ground truth's means the maps cover the
background, e.g. co-occurring context such as water for boats).

Usage::

    python tools/analysis_tools/sweep_bg_threshold.py \\
        work_dirs/labels/cams data/VOCdevkit/VOC2012/SegmentationClassAug \\
        data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt \\
        [--thresholds 0.05:0.95:0.05] [--nproc 4] [--num-classes 21] \\
        [--config configs/cam/cam_r38_voc.py]
"""
import argparse
import os.path as osp
from multiprocessing import Pool
from typing import List, Optional, Sequence

import numpy as np
from mmengine.config import Config

from rca_mm.evaluation.functional import confusion_matrix, summarize_confusion
from rca_mm.evaluation.recipes import BasePseudoLabelRecipe
from rca_mm.fileio import load_cam_npz, read_label_png, read_list_file
from rca_mm.registry import PSEUDO_LABEL_RECIPES


def parse_thresholds(spec: str) -> List[float]:
    """``'start:stop:step'`` (stop included) or one value -> thresholds."""
    parts = spec.split(':')
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f'--thresholds {spec!r}: expected numbers, as '
                         "'0.05:0.95:0.05' or '0.2'") from None
    if len(values) == 1:
        thresholds = values
    elif len(values) == 3 and values[2] > 0 and values[1] >= values[0]:
        start, stop, step = values
        count = int(np.floor((stop - start) / step + 1e-6)) + 1
        thresholds = [round(start + i * step, 6) for i in range(count)]
    else:
        raise ValueError(f'--thresholds {spec!r}: expected start:stop:step '
                         'with step > 0 and stop >= start, or one value')
    if not all(0 <= t <= 1 for t in thresholds):
        raise ValueError(f'--thresholds {spec!r}: CAMs are in [0, 1], so are '
                         'the thresholds')
    return thresholds


def threshold_recipes(
        thresholds: Sequence[float],
        recipe: Optional[dict] = None) -> List[BasePseudoLabelRecipe]:
    """The recipe at each background threshold.

    Args:
        thresholds (Sequence[float]): background thresholds.
        recipe (dict, optional): a recipe config as
            ``model.test_cfg.pseudo_label`` gives it; its ``bg_threshold``
            is replaced. Default: None (``dict(type='ThresholdRecipe')``).

    Returns:
        list[BasePseudoLabelRecipe]: one recipe per threshold, built from
        ``PSEUDO_LABEL_RECIPES``.

    Raises:
        ValueError: a recipe without ``bg_threshold`` (it has no threshold
            to sweep), or with a CRF (the CAM files hold no image).
    """
    recipe = dict(recipe or dict(type='ThresholdRecipe'))
    if recipe.get('type') != 'ThresholdRecipe':
        raise ValueError(
            'model.test_cfg.pseudo_label: the sweep varies the bg_threshold '
            f"of 'ThresholdRecipe', got {recipe.get('type')!r}")
    if recipe.get('crf'):
        raise ValueError('model.test_cfg.pseudo_label: crf=True needs the '
                         'images, which the CAM files do not hold; sweep '
                         'without the CRF')
    return [
        PSEUDO_LABEL_RECIPES.build(dict(recipe, bg_threshold=t))
        for t in thresholds
    ]


def config_recipe(config: str) -> dict:
    """The recipe config of a stage-1 config, ``model.test_cfg.pseudo_label``.

    Raises:
        ValueError: the config sets none.
    """
    recipe = Config.fromfile(config).model.get('test_cfg',
                                               {}).get('pseudo_label')
    if recipe is None:
        raise ValueError(f'{config}: no model.test_cfg.pseudo_label to sweep')
    return dict(recipe)


def image_matrices(cam_file: str, gt_file: str,
                   recipes: Sequence[BasePseudoLabelRecipe],
                   num_classes: int) -> np.ndarray:
    """One image's confusion matrix under each recipe, (T, C, C + 1)."""
    class_ids, cams = load_cam_npz(cam_file)
    gt = read_label_png(gt_file)
    if gt.shape != cams.shape[1:]:
        raise ValueError(f'{gt_file!r} is {gt.shape} but the CAMs in '
                         f'{cam_file!r} are {cams.shape[1:]}')
    return np.stack([
        confusion_matrix(recipe(cams, class_ids), gt, num_classes)
        for recipe in recipes
    ])


def foreground_scores(cm: np.ndarray) -> dict:
    """Class-agnostic precision and recall of the predicted foreground.

    Args:
        cm (np.ndarray): ``(C, C + 1)`` confusion matrix (rows: ground
            truth, 0 = background; the last column: predicted 255).

    Returns:
        dict: ``fg_precision``, ``fg_recall`` (fractions, NaN when empty).
    """
    num_classes = cm.shape[0]
    hit = cm[1:, 1:num_classes].sum()
    predicted = cm[:, 1:num_classes].sum()
    actual = cm[1:, :].sum()
    with np.errstate(invalid='ignore', divide='ignore'):
        return dict(
            fg_precision=np.float64(hit) / predicted,
            fg_recall=np.float64(hit) / actual)


def _job(args: tuple) -> np.ndarray:
    return image_matrices(*args)


def sweep(cam_dir: str,
          gt_dir: str,
          names: Sequence[str],
          thresholds: Sequence[float],
          num_classes: int = 21,
          nproc: int = 1,
          recipe: Optional[dict] = None) -> List[dict]:
    """Score the threshold recipe at every threshold over ``names``.

    Args:
        cam_dir (str): directory of ``<name>.npz`` CAM files.
        gt_dir (str): directory of ``<name>.png`` ground-truth label maps.
        names (Sequence[str]): the images to score.
        thresholds (Sequence[float]): background thresholds.
        num_classes (int): classes with background. Default: 21 (VOC).
        nproc (int): worker processes. Default: 1.
        recipe (dict, optional): the recipe config whose ``bg_threshold`` is
            swept, see :func:`threshold_recipes`. Default: None
            (``ThresholdRecipe``).

    Returns:
        list[dict]: per threshold, ``threshold``, ``mIoU_full``,
        ``mIoU_confident``, ``fg_precision``, ``fg_recall`` (fractions).
    """
    recipes = threshold_recipes(thresholds, recipe)
    jobs = [(osp.join(cam_dir,
                      n + '.npz'), osp.join(gt_dir,
                                            n + '.png'), recipes, num_classes)
            for n in names]
    missing = [f for job in jobs for f in job[:2] if not osp.isfile(f)]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} CAM/ground-truth files are missing, e.g. '
            f'{missing[:3]}')
    total = np.zeros((len(thresholds), num_classes, num_classes + 1), np.int64)
    if nproc > 1:
        with Pool(nproc) as pool:
            for matrices in pool.imap_unordered(_job, jobs, chunksize=8):
                total += matrices
    else:
        for job in jobs:
            total += _job(job)
    rows = []
    for threshold, cm in zip(thresholds, total):
        scores = summarize_confusion(cm)
        rows.append(
            dict(
                threshold=threshold,
                mIoU_full=scores['mIoU_full'],
                mIoU_confident=scores['mIoU_confident'],
                **foreground_scores(cm)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('cam_dir', help='directory of <name>.npz CAM files')
    parser.add_argument('gt_dir', help='directory of <name>.png label maps')
    parser.add_argument('list', help='file listing the images to score')
    parser.add_argument(
        '--thresholds',
        default='0.05:0.95:0.05',
        help='start:stop:step (stop included) or one value')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=21,
        help='classes with background (VOC: 21, COCO: 81)')
    parser.add_argument(
        '--config',
        help='stage-1 config whose model.test_cfg.pseudo_label (a '
        'ThresholdRecipe) is swept (default: ThresholdRecipe defaults)')
    args = parser.parse_args()
    try:
        names = read_list_file(args.list)
        recipe = config_recipe(args.config) if args.config else None
        rows = sweep(args.cam_dir, args.gt_dir, names,
                     parse_thresholds(args.thresholds), args.num_classes,
                     args.nproc, recipe)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    print(f'{len(names)} images')
    print(f'{"threshold":>9}  {"mIoU_full":>9}  {"mIoU_confident":>14}  '
          f'{"fg_precision":>12}  {"fg_recall":>9}')
    for row in rows:
        print(f'{row["threshold"]:>9.3f}  {100 * row["mIoU_full"]:>9.2f}  '
              f'{100 * row["mIoU_confident"]:>14.2f}  '
              f'{100 * row["fg_precision"]:>12.2f}  '
              f'{100 * row["fg_recall"]:>9.2f}')
    best = max(rows, key=lambda r: np.nan_to_num(r['mIoU_full'], nan=-1.))
    print(f'best threshold: {best["threshold"]:.3f} '
          f'(mIoU_full {100 * best["mIoU_full"]:.2f}, '
          f'mIoU_confident {100 * best["mIoU_confident"]:.2f})')


if __name__ == '__main__':
    main()
