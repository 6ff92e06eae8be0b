"""SynthNet: SynthVOC's ImageNet, an object-centric classification dataset.

Every classifier in the RCA paper starts from ImageNet weights. SynthNet
plays ImageNet's role for SynthVOC: it is drawn from the same world
(:mod:`rca_mm.datasets.synthetic.synthvoc_render`: the same backgrounds,
bodies, parts and renderer) with ImageNet's properties, decided before any
measurement with it (``docs/synthnet.md``):

- many more classes than SynthVOC (100 by default), SynthVOC's 10 among
  them with exactly their look, as ImageNet contains VOC's categories;
- classes that differ in body as well as in part: every SynthVOC part also
  sits on two other bodies, as other classes, and every SynthVOC body
  carries two other parts, so a classifier must encode the whole object,
  not one colour patch (ImageNet's fine-grained classes: many dog breeds);
- one large object per image, mostly centred;
- backgrounds drawn independently of the class (no co-occurrence);
- image-level labels only, no pixel labels.

On disk it has the layout mmpretrain's ``CustomDataset`` reads (ImageNet's,
with annotation lists)::

    OUT/train/<ccc_name>/<name>.jpg   RGB JPEG, quality 95
    OUT/val/<ccc_name>/<name>.jpg
    OUT/meta/train.txt                "<ccc_name>/<name>.jpg <label>" lines
    OUT/meta/val.txt                  (written last)
    OUT/classes.txt                   class names, one per line, label order
    OUT/synthnet.json                 arguments, counts, completeness

``ccc`` is the zero-padded label, so the sorted folder names follow the
labels. Written deterministically, in parallel, atomically and resumably
like SynthVOC (:mod:`rca_mm.datasets.synthetic.generated`).
"""
import os.path as osp
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

from rca_mm.fileio import atomic_write
from .generated import (checked_size, is_complete, map_jobs, mark_incomplete,
                        write_meta, write_text)
from .synthvoc_render import (BACKGROUNDS, BODY_STYLES, PART_SHAPES,
                              ObjectLook, _hsv2rgb, background, build_world,
                              class_look, composite, draw_object,
                              light_and_noise)

# Bumped whenever a seed would render differently (synthnet.json records it).
FORMAT_VERSION = 1
NUM_SYNTHVOC = 10
# Body colours (OpenCV HSV): SynthVOC's three, then grey and plum.
BODY_HSV = ((12, 150, 150), (25, 70, 135), (108, 45, 150), (0, 0, 110),
            (155, 90, 110))
NUM_HUES = 20  # part hues 9 apart: SynthVOC's ten (18 apart) and between
LOOKALIKES = 2  # other classes with each SynthVOC part on another body
SIBLINGS = 2  # other classes with another part on each SynthVOC body
AREA_RANGE = (0.15, 0.55)  # one large object (image fraction) ...
CENTRE_RANGE = (0.35, 0.65)  # ... mostly centred
WORLD_SEED = 2022  # which (part, body) pairs the classes get


@dataclass(frozen=True)
class SynthNetWorld:
    """The classes of SynthNet (independent of the image seed).

    Attributes:
        names (tuple[str]): class names in label order; the first 10 are
            SynthVOC's foreground classes.
        looks (tuple[ObjectLook]): each class's appearance; the first 10
            are SynthVOC's (``class_look``).
        parts (np.ndarray): ``(C,)`` id of each class's part; ids below 10
            are SynthVOC's parts.
        bodies (np.ndarray): ``(C,)`` id of each class's body (style x
            colour); ids 0..2 are SynthVOC's three bodies.
    """
    names: Tuple[str, ...]
    looks: Tuple[ObjectLook, ...]
    parts: np.ndarray
    bodies: np.ndarray


def _body(body: int) -> Tuple[str, np.ndarray]:
    """Style and HSV colour of body ``body`` (``style * 5 + colour``, so
    SynthVOC's group ``g`` is body ``g * 6``)."""
    style, colour = divmod(body, len(BODY_HSV))
    return BODY_STYLES[style], np.asarray(BODY_HSV[colour], np.float32)


@lru_cache(maxsize=4)
def build_synthnet_world(num_classes: int = 100) -> SynthNetWorld:
    """The SynthNet classes: SynthVOC's 10, their look-alikes and siblings,
    then other (part, body) pairs drawn with a fixed seed.

    Parts are SynthVOC's 10 and 60 new ones (the 10 hues between
    SynthVOC's, times the 6 shapes); bodies are the 3 textures times the 5
    colours of ``BODY_HSV``.

    Args:
        num_classes (int): 50 (10 + 10 x (LOOKALIKES + SIBLINGS)) to 1,050
            (every part on every body). Default: 100.
    """
    voc = build_world(NUM_SYNTHVOC)
    voc_looks = [class_look(voc, c) for c in range(NUM_SYNTHVOC)]
    new_parts = [(_hsv2rgb((h * 180.0 / NUM_HUES, 235, 245)), shape)
                 for h in range(1, NUM_HUES, 2) for shape in PART_SHAPES]
    part_look = [(lk.part_rgb, lk.part_shape) for lk in voc_looks] + new_parts
    num_bodies = len(BODY_STYLES) * len(BODY_HSV)
    need = NUM_SYNTHVOC * (1 + LOOKALIKES + SIBLINGS)
    total = len(part_look) * num_bodies
    if not need <= num_classes <= total:
        raise ValueError(
            f'num_classes must be in {need}..{total}, got {num_classes}')
    voc_body = [
        BODY_STYLES.index(lk.body_style) * (len(BODY_HSV) + 1)
        for lk in voc_looks
    ]
    rows = [(c, voc_body[c]) for c in range(NUM_SYNTHVOC)]
    rng = np.random.default_rng(WORLD_SEED)

    def add(candidates, count):
        free = [r for r in candidates if r not in rows]
        for i in sorted(rng.permutation(len(free))[:count]):
            rows.append(free[i])

    for c in range(NUM_SYNTHVOC):
        style, colour = divmod(voc_body[c], len(BODY_HSV))
        add([(c, b) for b in range(num_bodies)
             if b // len(BODY_HSV) != style and b % len(BODY_HSV) != colour],
            LOOKALIKES)
        add([(p, voc_body[c]) for p in range(NUM_SYNTHVOC, len(part_look))],
            SIBLINGS)
    add([(p, b) for p in range(len(part_look)) for b in range(num_bodies)],
        num_classes - len(rows))
    looks = tuple(voc_looks) + tuple(
        ObjectLook(*part_look[p], *_body(b)) for p, b in rows[NUM_SYNTHVOC:])
    names = tuple(voc.names[1:]) + tuple(
        f'synth{i:03d}' for i in range(NUM_SYNTHVOC, num_classes))
    rows = np.asarray(rows)
    return SynthNetWorld(names, looks, rows[:, 0], rows[:, 1])


def render_synthnet_sample(
    world: SynthNetWorld,
    cls: int,
    rng: np.random.Generator,
    size: Tuple[int, int] = (112, 112)) -> dict:
    """Render one SynthNet image of class ``cls``.

    Returns:
        dict: ``image`` (H, W, 3) uint8 RGB, ``mask`` (H, W) bool (the
        object; for tests, never written) and ``background`` (str).
    """
    h, w = size
    s = min(h, w) / 128.0
    bg = int(rng.integers(len(BACKGROUNDS)))  # independent of the class
    image = background(rng, bg, h, w, s)
    obj = draw_object(rng, world.looks[cls], h, w, s, AREA_RANGE, CENTRE_RANGE)
    image = light_and_noise(rng, composite(image, obj, s))
    return dict(image=image, mask=obj['mask'], background=BACKGROUNDS[bg])


def class_folder(world: SynthNetWorld, cls: int) -> str:
    """``ccc_name``: the folder of class ``cls``."""
    return f'{cls:03d}_{world.names[cls]}'


def _write_image(job: Tuple[str, str, int, int, int, Tuple[int, int], int]):
    out_dir, rel, cls, seed, index, size, num_classes = job
    world = build_synthnet_world(num_classes)
    sample = render_synthnet_sample(world, cls,
                                    np.random.default_rng([seed, index]), size)
    atomic_write(
        osp.join(out_dir, rel),
        lambda p: Image.fromarray(sample['image']).save(
            p, format='JPEG', quality=95))


def generate_synthnet(out_dir: str,
                      *,
                      seed: int = 0,
                      num_classes: int = 100,
                      num_train_per_class: int = 80,
                      num_val_per_class: int = 10,
                      size: Sequence[int] = (112, 112),
                      nproc: int = 1,
                      show_progress: bool = True) -> Dict[str, int]:
    """Write SynthNet under ``out_dir`` (layout in the module docstring).

    Image ``i`` is rendered from ``np.random.default_rng([seed, i])``, so
    the files are a function of the arguments (bit-identical across runs and
    ``nproc``). A re-run with the same arguments on a complete dataset does
    nothing, an interrupted one is redone, other arguments are refused.

    Args:
        out_dir (str): the dataset root to create (empty or absent).
        seed (int): random seed of the images. Default: 0.
        num_classes (int): classes (``build_synthnet_world``). Default: 100.
        num_train_per_class (int): training images per class. Default: 80.
        num_val_per_class (int): validation images per class. Default: 10.
        size (Sequence[int]): image height and width. Default: (112, 112).
        nproc (int): worker processes. Default: 1.
        show_progress (bool): show a progress bar. Default: True.

    Returns:
        dict: ``train`` and ``val`` (images) and ``num_classes``.
    """
    size = checked_size(size, nproc)
    if num_train_per_class < 1 or num_val_per_class < 0:
        raise ValueError('num_train_per_class must be >= 1 and '
                         'num_val_per_class >= 0, got '
                         f'{num_train_per_class} and {num_val_per_class}')
    world = build_synthnet_world(num_classes)
    args = dict(
        version=FORMAT_VERSION,
        seed=seed,
        num_classes=num_classes,
        num_train_per_class=num_train_per_class,
        num_val_per_class=num_val_per_class,
        size=list(size))
    counts = dict(
        train=num_classes * num_train_per_class,
        val=num_classes * num_val_per_class,
        num_classes=num_classes)
    meta_path = osp.join(out_dir, 'synthnet.json')
    written_last = ['meta/train.txt', 'meta/val.txt', 'classes.txt']
    if is_complete(out_dir, meta_path, args, written_last):
        return counts
    meta = mark_incomplete(out_dir, meta_path, args, written_last)
    # Images interleave the classes: index i is class i % C.
    per_split = dict(train=num_train_per_class, val=num_val_per_class)
    jobs, lists, index = [], dict(train=[], val=[]), 0
    for split, per_class in per_split.items():
        for k in range(per_class * num_classes):
            cls = k % num_classes
            rel = f'{class_folder(world, cls)}/{split}_{index:06d}.jpg'
            jobs.append((out_dir, f'{split}/{rel}', cls, seed, index, size,
                         num_classes))
            lists[split].append(f'{rel} {cls}\n')
            index += 1
    map_jobs(_write_image, jobs, nproc, show_progress)
    write_text(osp.join(out_dir, 'classes.txt'), '\n'.join(world.names) + '\n')
    for split in ('train', 'val'):
        write_text(
            osp.join(out_dir, 'meta', split + '.txt'), ''.join(lists[split]))
    meta.update(complete=True, counts=counts)
    write_meta(meta_path, meta)
    return counts
