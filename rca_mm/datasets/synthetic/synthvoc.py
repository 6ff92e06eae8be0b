"""SynthVOC on disk: the whole dataset in PASCAL VOC's layout.

The images come from :mod:`rca_mm.datasets.synthetic.synthvoc_render` (the
world, the difficulties and the renderer); this module writes them, in
parallel, atomically and resumably, so the VOC dataset classes load the
result. See ``docs/synthvoc.md``.

.. code:: text

    OUT/JPEGImages/<name>.jpg               RGB, JPEG quality 95
    OUT/SegmentationClassAug/<name>.png     VOC palette, 0 bg, 1..C, 255
    OUT/SaliencyMaps/<name>.png             grey 0..255
    OUT/ImageSets/Segmentation/{train_aug,train,val}.txt  (written last)
    OUT/classes.txt                         background first
    OUT/synthvoc.json                       arguments, counts, completeness
"""
import os
import os.path as osp
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

from rca_mm.fileio import atomic_write, save_label_png
from .generated import (checked_size, is_complete, map_jobs, mark_incomplete,
                        write_meta, write_text)
from .synthvoc_render import FORMAT_VERSION, build_world, render_sample

LISTS = ('train_aug', 'train', 'val')


def _write_image(job: Tuple[str, int, str, int, Tuple[int, int], int]):
    """Render image ``index`` and write its three files; return its tags."""
    out_dir, index, name, seed, size, num_classes = job
    sample = render_sample(
        build_world(num_classes), np.random.default_rng([seed, index]), size)
    atomic_write(
        osp.join(out_dir, 'JPEGImages', name + '.jpg'),
        lambda p: Image.fromarray(sample['image']).save(
            p, format='JPEG', quality=95))
    save_label_png(sample['label'],
                   osp.join(out_dir, 'SegmentationClassAug', name + '.png'))
    atomic_write(
        osp.join(out_dir, 'SaliencyMaps', name + '.png'),
        lambda p: Image.fromarray(sample['saliency']).save(p, format='PNG'))
    tags = np.unique(sample['label'])
    return [int(t) for t in tags if 0 < t < 255]


def generate_synthvoc(out_dir: str,
                      *,
                      seed: int = 0,
                      num_train: int = 2000,
                      num_val: int = 300,
                      num_train_subset: int = 300,
                      size: Sequence[int] = (128, 128),
                      num_classes: int = 10,
                      nproc: int = 1,
                      show_progress: bool = True) -> Dict[str, int]:
    """Write a SynthVOC dataset in PASCAL VOC layout under ``out_dir``.

    Image ``i`` is rendered from ``np.random.default_rng([seed, i])``, so the
    files are a function of the arguments (bit-identical across runs and
    ``nproc``). ``synthvoc.json`` records the arguments: a re-run with the
    same ones on a complete dataset does nothing, an interrupted one (no
    lists yet) is redone, other arguments are refused.

    Args:
        out_dir (str): the dataset root to create (empty or absent).
        seed (int): random seed. Default: 0.
        num_train (int): images in ``train_aug.txt``. Default: 2000.
        num_val (int): images in ``val.txt``. Default: 300.
        num_train_subset (int): the first ``train_aug`` images that form
            ``train.txt`` (where pseudo labels are scored, like VOC's 1,464
            ``train`` in its 10,582 ``train_aug``). Default: 300.
        size (Sequence[int]): image height and width. Default: (128, 128).
        num_classes (int): foreground classes C. Default: 10.
        nproc (int): worker processes. Default: 1.
        show_progress (bool): show a progress bar. Default: True.

    Returns:
        dict: ``train_aug``, ``train``, ``val`` (images per list) and
        ``num_classes``.
    """
    size = checked_size(size, nproc)
    if num_train < 1 or num_val < 0:
        raise ValueError(f'num_train must be >= 1 and num_val >= 0, got '
                         f'{num_train} and {num_val}')
    if not 1 <= num_train_subset <= num_train:
        raise ValueError(f'num_train_subset must be in 1..num_train '
                         f'({num_train}), got {num_train_subset}')
    world = build_world(num_classes)
    args = dict(
        version=FORMAT_VERSION,
        seed=seed,
        num_train=num_train,
        num_val=num_val,
        num_train_subset=num_train_subset,
        size=list(size),
        num_classes=num_classes)
    counts = dict(
        train_aug=num_train,
        train=num_train_subset,
        val=num_val,
        num_classes=num_classes)
    meta_path = osp.join(out_dir, 'synthvoc.json')
    written_last = [f'ImageSets/Segmentation/{x}.txt' for x in LISTS]
    if is_complete(out_dir, meta_path, args, written_last):
        return counts
    lists_dir = osp.join(out_dir, 'ImageSets', 'Segmentation')
    for sub in ('JPEGImages', 'SegmentationClassAug', 'SaliencyMaps'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    meta = mark_incomplete(out_dir, meta_path, args, written_last)
    names = [f'2026_{i:06d}' for i in range(num_train + num_val)]
    jobs = [(out_dir, i, n, seed, size, num_classes)
            for i, n in enumerate(names)]
    tags = map_jobs(_write_image, jobs, nproc, show_progress)
    write_text(osp.join(out_dir, 'classes.txt'), '\n'.join(world.names) + '\n')
    splits = dict(
        train_aug=names[:num_train],
        train=names[:num_train_subset],
        val=names[num_train:])
    for split, split_names in splits.items():
        write_text(
            osp.join(lists_dir, split + '.txt'),
            ''.join(n + '\n' for n in split_names))
    per_class = np.zeros(num_classes + 1, int)
    for t in tags[:num_train]:
        per_class[t] += 1
    meta.update(
        complete=True,
        counts=counts,
        train_aug_images_per_class=dict(
            zip(world.names[1:], per_class[1:].tolist())))
    write_meta(meta_path, meta)
    return counts
