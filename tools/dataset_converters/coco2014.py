"""Convert MS COCO 2014 instance annotations to WSSS semantic label maps.

Reads ``COCO_ROOT/annotations/instances_{train,val}2014.json`` (pycocotools)
and writes, under ``--out``:

.. code:: text

    images/{train2014,val2014}        symlinks to COCO_ROOT/{train,val}2014
    SegmentationClass/{train2014,val2014}/<file stem>.png
        palette PNGs: 0 = background, 1..80 = the categories in the order of
        their ids (COCO_CLASSES), 255 = ignore
    ImageSets/{train,val}.txt         images with at least one class
                                      (82,081 / 40,137 on COCO 2014)
    ImageSets/{train,val}_cls.txt     tag files ``name c1 c2 ...`` (0-based)

Overlaps: instances are painted from the largest area to the smallest, so a
smaller object lying on a larger one keeps its pixels. Crowd regions
(``iscrowd=1``) are painted first, under every instance, with their class
(``--crowd class``, the default: they are pixels of that class) or with 255
(``--crowd ignore``). Tags are the classes present in the written map.

Every file is written atomically and existing label maps are skipped, so an
interrupted run is resumed by running it again.

Usage::

    python tools/dataset_converters/coco2014.py data/coco --out data/coco2014
"""
import argparse
import os
import os.path as osp
from functools import partial
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import track_parallel_progress, track_progress

from rca_mm.datasets.metainfo import COCO_CLASSES
from rca_mm.fileio import (atomic_write_lines, label_map_classes,
                           save_label_png, write_tag_file)

IGNORE = 255
# One task: (file stem, height, width, [(label, segmentation, iscrowd,
# area), ...]).
Task = Tuple[str, int, int, List[tuple]]


def decode_segmentation(segm, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE)
    as a boolean ``(H, W)`` mask."""
    from pycocotools import mask as mask_utils
    if isinstance(segm, list):  # polygons
        rles = mask_utils.frPyObjects(segm, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segm.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segm, height, width)
    else:  # compressed RLE
        rle = segm
    return mask_utils.decode(rle).astype(bool)


def rasterise(task: Task, crowd: str) -> np.ndarray:
    """The label map of one image (see the module docstring for the
    overlap and crowd rules)."""
    _, height, width, anns = task
    out = np.zeros((height, width), np.uint8)
    crowds = [a for a in anns if a[2]]
    instances = sorted((a for a in anns if not a[2]), key=lambda a: -a[3])
    for label, segm, _, _ in crowds:
        out[decode_segmentation(segm, height, width)] = (
            label if crowd == 'class' else IGNORE)
    for label, segm, _, _ in instances:
        out[decode_segmentation(segm, height, width)] = label
    return out


def convert_one(task: Task, seg_dir: str, crowd: str) -> Tuple[str, List[int]]:
    """Write one label map unless it exists; return its stem and tags."""
    path = osp.join(seg_dir, task[0] + '.png')
    if not osp.exists(path):
        save_label_png(rasterise(task, crowd), path)
    return task[0], label_map_classes(path, len(COCO_CLASSES))


def load_tasks(ann_file: str) -> List[Task]:
    """One task per image of ``ann_file``, categories mapped to 1..80 in
    category-id order."""
    from pycocotools.coco import COCO
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'COCO annotation file {ann_file!r} does '
                                f'not exist')
    coco = COCO(ann_file)
    cat_ids = sorted(coco.getCatIds())
    if len(cat_ids) != len(COCO_CLASSES) - 1:
        raise ValueError(f'{ann_file!r} has {len(cat_ids)} categories; COCO '
                         f'2014 instances have {len(COCO_CLASSES) - 1}')
    label_of = {cat: i + 1 for i, cat in enumerate(cat_ids)}
    tasks = []
    for img_id in sorted(coco.getImgIds()):
        info = coco.imgs[img_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None))
        tasks.append(
            (osp.splitext(info['file_name'])[0], info['height'], info['width'],
             [(label_of[a['category_id']], a['segmentation'],
               a.get('iscrowd', 0), a.get('area', 0.)) for a in anns]))
    return tasks


def link_images(coco_root: str, out: str, split_dir: str) -> None:
    """Link ``out/images/<split_dir>`` to ``coco_root/<split_dir>``."""
    src = osp.abspath(osp.join(coco_root, split_dir))
    dst = osp.join(out, 'images', split_dir)
    if osp.lexists(dst):
        return
    if not osp.isdir(src):
        print(f'warning: {src} does not exist; put the {split_dir} images '
              f'in {dst} yourself')
        return
    os.makedirs(osp.dirname(dst), exist_ok=True)
    os.symlink(src, dst, target_is_directory=True)


def convert_split(coco_root: str, out: str, split: str, crowd: str,
                  nproc: int) -> Tuple[int, int]:
    """Convert one split; return (images, images with tags)."""
    split_dir = f'{split}2014'
    tasks = load_tasks(
        osp.join(coco_root, 'annotations', f'instances_{split_dir}.json'))
    seg_dir = osp.join(out, 'SegmentationClass', split_dir)
    os.makedirs(seg_dir, exist_ok=True)
    link_images(coco_root, out, split_dir)
    work = partial(convert_one, seg_dir=seg_dir, crowd=crowd)
    if nproc > 1:
        results = track_parallel_progress(work, tasks, nproc)
    else:
        results = track_progress(work, tasks)
    tags = dict(results)
    names = [name for name, _, _, _ in tasks if tags[name]]
    atomic_write_lines(osp.join(out, 'ImageSets', f'{split}.txt'), names)
    write_tag_file(osp.join(out, 'ImageSets', f'{split}_cls.txt'), names, tags)
    return len(tasks), len(names)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Convert COCO 2014 instance annotations to semantic '
        'label maps, image lists and tag files for WSSS.')
    parser.add_argument(
        'coco_root',
        help='COCO root with annotations/ and train2014/, val2014/')
    parser.add_argument(
        '--out', default='data/coco2014', help='output directory')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train', 'val'],
        choices=['train', 'val'])
    parser.add_argument(
        '--crowd',
        choices=['class', 'ignore'],
        default='class',
        help='crowd regions: their class (default) or 255')
    parser.add_argument('--nproc', type=int, default=1)
    args = parser.parse_args(argv)
    for split in args.splits:
        total, kept = convert_split(args.coco_root, args.out, split,
                                    args.crowd, args.nproc)
        print(f'{split}: {total} label maps, {kept} images with tags in '
              f'{osp.join(args.out, "ImageSets", split + ".txt")}')


if __name__ == '__main__':
    main()
