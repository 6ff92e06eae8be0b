"""Build VOC 2012 "train_aug" from VOC 2012 and SBD, for WSSS.

Writes, under VOC_ROOT (the ``VOC2012`` directory):

.. code:: text

    SegmentationClassAug/<name>.png    palette PNGs: SBD's cls/<name>.mat
                                       (GTcls.Segmentation) and VOC's own
                                       SegmentationClass/<name>.png, VOC's
                                       winning where both exist
    ImageSets/Segmentation/train_aug.txt   (SBD train + SBD val + VOC train)
                                           minus VOC val, sorted: 10,582
    ImageSets/Segmentation/{train_aug,train,val}_cls.txt   tag files
                                       (``name c1 c2 ...``, 0-based ids)

Every file is written atomically; masks already present are skipped, so an
interrupted run is resumed by running it again.

Usage::

    python tools/dataset_converters/voc_aug.py data/VOCdevkit/VOC2012 \\
        data/benchmark_RELEASE [--nproc 8]
"""
import argparse
import os.path as osp
from functools import partial
from typing import List, Optional, Tuple

import numpy as np
from mmengine.utils import track_parallel_progress, track_progress

from rca_mm.fileio import (atomic_write_lines, label_map_classes,
                           read_list_file, read_voc_label_png, save_label_png,
                           write_tag_file)

NUM_CLASSES = 21  # VOC: background + 20


def find_dir(root: str, nested: str, marker: str, hint: str) -> str:
    """``root`` or ``root/nested``, whichever holds the directory
    ``marker``.

    Raises:
        FileNotFoundError: neither does; the message ends with ``hint``.
    """
    for candidate in (root, osp.join(root, nested)):
        if osp.isdir(osp.join(candidate, marker)):
            return candidate
    raise FileNotFoundError(
        f'no {marker}/ directory in {root!r} or {root}/{nested}: {hint}')


def read_sbd_mat(path: str) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD ``cls/*.mat`` as uint8 ``(H, W)``."""
    from scipy.io import loadmat
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
        seg = np.asarray(mat['GTcls'].Segmentation)
    except (KeyError, AttributeError, ValueError, OSError) as e:
        raise ValueError(f'{path!r} is not an SBD cls annotation (expected '
                         f'a GTcls struct with a Segmentation field): '
                         f'{e}') from e
    if seg.ndim != 2 or seg.max(initial=0) >= NUM_CLASSES:
        raise ValueError(f'{path!r}: GTcls.Segmentation must be a 2-D map '
                         f'of classes 0..20')
    return seg.astype(np.uint8)


def convert_one(name: str, voc: str, sbd: str) -> Tuple[str, List[int]]:
    """Write ``SegmentationClassAug/<name>.png`` unless it exists; return
    ``name`` and its tags."""
    out = osp.join(voc, 'SegmentationClassAug', name + '.png')
    if not osp.exists(out):
        voc_png = osp.join(voc, 'SegmentationClass', name + '.png')
        mask = read_voc_label_png(voc_png) if osp.exists(voc_png) else \
            read_sbd_mat(osp.join(sbd, 'cls', name + '.mat'))
        save_label_png(mask, out)
    return name, label_map_classes(out, NUM_CLASSES)


def build_lists(voc: str,
                sbd: str) -> Tuple[List[str], List[str], List[str], List[str]]:
    """``(all names to convert, train_aug, VOC train, VOC val)``."""
    sets = osp.join(voc, 'ImageSets', 'Segmentation')
    voc_train = read_list_file(osp.join(sets, 'train.txt'), 'VOC train list')
    voc_val = read_list_file(osp.join(sets, 'val.txt'), 'VOC val list')
    sbd_train = read_list_file(osp.join(sbd, 'train.txt'), 'SBD train list')
    sbd_val = read_list_file(osp.join(sbd, 'val.txt'), 'SBD val list')
    train_aug = sorted(set(sbd_train + sbd_val + voc_train) - set(voc_val))
    everything = sorted(set(train_aug) | set(voc_val))
    return everything, train_aug, voc_train, voc_val


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Build VOC 2012 train_aug (SegmentationClassAug, lists '
        'and tag files) from VOC 2012 and SBD.')
    parser.add_argument('voc_root', help='VOCdevkit/VOC2012 (or VOCdevkit)')
    parser.add_argument(
        'sbd_root', help='SBD benchmark_RELEASE (or its dataset/)')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes (default 1)')
    args = parser.parse_args(argv)

    voc = find_dir(args.voc_root, 'VOC2012', 'JPEGImages',
                   'pass the VOC2012 directory of VOCdevkit')
    sbd = find_dir(args.sbd_root, 'dataset', 'cls',
                   'pass the extracted SBD benchmark_RELEASE directory')
    everything, train_aug, voc_train, voc_val = build_lists(voc, sbd)
    work = partial(convert_one, voc=voc, sbd=sbd)
    if args.nproc > 1:
        results = track_parallel_progress(work, everything, args.nproc)
    else:
        results = track_progress(work, everything)
    tags = dict(results)

    sets = osp.join(voc, 'ImageSets', 'Segmentation')
    atomic_write_lines(osp.join(sets, 'train_aug.txt'), train_aug)
    for split, names in (('train_aug', train_aug), ('train', voc_train),
                         ('val', voc_val)):
        write_tag_file(osp.join(sets, f'{split}_cls.txt'), names, tags)
    print(f'{len(everything)} label maps in '
          f'{osp.join(voc, "SegmentationClassAug")}; train_aug: '
          f'{len(train_aug)}, train: {len(voc_train)}, val: {len(voc_val)} '
          f'images')


if __name__ == '__main__':
    main()
