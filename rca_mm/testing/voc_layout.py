"""A tiny dataset in PASCAL VOC 2012 layout, for tests and smoke runs.

It writes exactly the files the VOC loaders read, so that they are exercised
on real formats without the real data:

.. code:: text

    ROOT/JPEGImages/<name>.jpg                 RGB JPEG
    ROOT/SegmentationClassAug/<name>.png       palette PNG, 0 = background,
                                               1..C classes, 255 = ignore
    ROOT/SaliencyMaps/<name>.png               grey PNG, 0..255
    ROOT/ImageSets/Segmentation/{train_aug,train,val}.txt

Each image shows 1-2 axis-aligned boxes; a class is a fixed colour plus
noise, with a 2-pixel ignore border, so a small model learns it in a few
dozen iterations. This is not a benchmark (see SynthVOC for that).

Usage::

    python -m rca_mm.testing.voc_layout --out data/smoke_voc
"""
import argparse
import os
import os.path as osp
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from rca_mm.fileio import save_label_png


def _draw_sample(rng: np.random.Generator, size: Tuple[int, int],
                 classes: Sequence[int], colours: np.ndarray):
    h, w = size
    image = rng.normal(100, 20, (h, w, 3))
    mask = np.zeros((h, w), np.uint8)
    for cls in rng.choice(classes, size=rng.integers(1, 3), replace=False):
        bh, bw = rng.integers(h // 4,
                              h // 2 + 1), rng.integers(w // 4, w // 2 + 1)
        y, x = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        image[y:y + bh,
              x:x + bw] = colours[cls] + rng.normal(0, 10, (bh, bw, 3))
        mask[max(y - 2, 0):y + bh + 2, max(x - 2, 0):x + bw + 2] = 255
        mask[y:y + bh, x:x + bw] = cls
    saliency = np.where((mask > 0) & (mask < 255), 230, 20).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8), mask, saliency


def write_voc_layout(root: str,
                     num_train: int = 16,
                     num_val: int = 8,
                     num_train_subset: int = 8,
                     size: Tuple[int, int] = (64, 64),
                     classes: Sequence[int] = (1, 2, 3),
                     seed: int = 0) -> str:
    """Write a tiny VOC-layout dataset under ``root``; return ``root``.

    Args:
        root (str): the ``VOC2012``-like directory to create.
        num_train (int): images in ``train_aug.txt``. Default: 16.
        num_val (int): images in ``val.txt``. Default: 8.
        num_train_subset (int): the first images of ``train_aug`` that also
            form ``train.txt``. Default: 8.
        size (tuple[int, int]): image height and width. Default: (64, 64).
        classes (Sequence[int]): VOC class ids (1-20) to draw. Default:
            (1, 2, 3).
        seed (int): the random seed; the output is a function of the
            arguments. Default: 0.
    """
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 255, (256, 3))
    dirs = {
        'img': osp.join(root, 'JPEGImages'),
        'seg': osp.join(root, 'SegmentationClassAug'),
        'sal': osp.join(root, 'SaliencyMaps'),
        'sets': osp.join(root, 'ImageSets', 'Segmentation'),
    }
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    names = [f'2007_{i:06d}' for i in range(num_train + num_val)]
    for name in names:
        image, mask, saliency = _draw_sample(rng, size, classes, colours)
        Image.fromarray(image).save(
            osp.join(dirs['img'], name + '.jpg'), quality=95)
        save_label_png(mask, osp.join(dirs['seg'], name + '.png'))
        Image.fromarray(saliency).save(osp.join(dirs['sal'], name + '.png'))
    lists = {
        'train_aug': names[:num_train],
        'train': names[:num_train_subset],
        'val': names[num_train:],
    }
    for split, split_names in lists.items():
        with open(osp.join(dirs['sets'], split + '.txt'), 'w') as f:
            f.write('\n'.join(split_names) + '\n')
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='directory to write')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    write_voc_layout(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        num_train_subset=args.num_train // 2,
        seed=args.seed)
    print(f'wrote {args.num_train} train_aug + {args.num_val} val images '
          f'to {args.out}')


if __name__ == '__main__':
    main()
