"""SynthVOC's world and renderer: one image, its labels and saliency.

SynthVOC is a procedural weakly supervised segmentation benchmark with the
difficulties that matter for weakly supervised segmentation, small enough to
train a classifier from scratch on a CPU in minutes:

- each class is a small, unique *discriminative part* (a saturated coloured
  shape, ~10-20 % of the object) on a larger *body* whose texture is shared
  by the other classes of its group, so a CAM fires on the part;
- classes prefer a background family (p = 0.7) and co-occur with the
  classes that prefer the same one (the "boat on water" problem);
- textured backgrounds, 1-3 objects with occlusion, truncation and scales
  from small to half the image, a mildly long-tailed class frequency;
- saliency maps with the faults of an off-the-shelf detector (blurred
  edges, holes, missed small objects, false blobs).

:func:`render_sample` draws one image from a seeded generator;
``rca_mm.datasets.synthetic.synthvoc`` writes a whole dataset in VOC's
layout. See ``docs/synthvoc.md`` for the picture and the numbers.
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Tuple

import cv2
import numpy as np

from rca_mm.datasets.metainfo import SYNTHVOC_CLASSES

# Bumped whenever a seed would render differently (synthvoc.json records it).
FORMAT_VERSION = 1
BACKGROUNDS = ('sky', 'water', 'grass', 'road', 'indoor')
BODY_STYLES = ('spots', 'mottled', 'stripes')
PART_SHAPES = ('circle', 'triangle', 'square', 'diamond', 'star', 'hexagon')
_SHAPE_VERTICES = dict(
    circle=(24, (1., )),
    triangle=(3, (1., )),
    square=(4, (1., )),
    diamond=(4, (1., .55)),
    star=(10, (1., .45)),
    hexagon=(6, (1., )))
# Per default class (SYNTHVOC_CLASSES[1:]): preferred background, body
# group (index into BODY_STYLES) and frequency rank (0 = most frequent).
_DEFAULT_BG = (0, 0, 1, 3, 4, 2, 4, 2, 3, 3)
_DEFAULT_GROUP = (2, 0, 2, 2, 0, 1, 0, 1, 1, 2)
_DEFAULT_RANK = (6, 4, 5, 1, 3, 9, 2, 7, 0, 8)
PREFERRED_BG_PROB = 0.7  # p(scene background = primary class's preferred)
COOCCUR_PROB = 0.5  # p(extra object from the same-background classes)
NUM_OBJECTS_PROBS = (0.5, 0.35, 0.15)  # 1, 2 or 3 objects
AREA_RANGE = (0.02, 0.5)  # object area / image area
MIN_VISIBLE = 0.35  # each object keeps this much of itself unoccluded
# Saliency faults (docs/synthvoc.md):
SAL_MISS_AREA = 0.05  # objects smaller than this (image fraction) ...
SAL_MISS_PROB = 0.4  # ... are missed with this probability
SAL_HOLE_PROB = 0.5  # p(an object's saliency has holes)
SAL_FALSE_PROB = 0.4  # p(an image has false salient blobs)


@dataclass(frozen=True)
class SynthVOCWorld:
    """The fixed appearance of the classes (independent of the seed).

    Attributes:
        names (tuple[str]): class names, background first.
        group (np.ndarray): ``(C,)`` body group of each class; the classes
            of a group share their body's texture and colour family.
        preferred_bg (np.ndarray): ``(C,)`` index into ``BACKGROUNDS``.
        freq (np.ndarray): ``(C,)`` sampling probability of each class.
        part_rgb (np.ndarray): ``(C, 3)`` the discriminative part's colour.
        part_shape (np.ndarray): ``(C,)`` index into ``PART_SHAPES``.
        body_hsv (np.ndarray): ``(G, 3)`` OpenCV HSV base of each group.
    """
    names: Tuple[str, ...]
    group: np.ndarray
    preferred_bg: np.ndarray
    freq: np.ndarray
    part_rgb: np.ndarray
    part_shape: np.ndarray
    body_hsv: np.ndarray


def _hsv2rgb(hsv) -> np.ndarray:
    px = np.clip(np.asarray(hsv, np.float32), 0, [179, 255, 255])
    px = px.astype(np.uint8).reshape(1, 1, 3)
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB).reshape(3).astype(np.float32)


@lru_cache(maxsize=8)
def build_world(num_classes: int) -> SynthVOCWorld:
    """The class definitions of a ``num_classes`` SynthVOC.

    The first 10 classes follow ``SYNTHVOC_CLASSES`` (person most frequent,
    cat/dog/bird share a spotted body, cow/horse/person a mottled one,
    aeroplane/boat/car/train a striped one); beyond 10, classes are named
    ``classNN`` and cycle through groups and backgrounds.
    """
    if not 1 <= num_classes <= 254:
        raise ValueError(f'num_classes must be in 1..254, got {num_classes}')
    c = np.arange(num_classes)
    if num_classes <= len(SYNTHVOC_CLASSES) - 1:
        names = tuple(SYNTHVOC_CLASSES[:num_classes + 1])
    else:
        names = ('background', ) + tuple(f'class{i + 1:02d}' for i in c)
    table = c < 10
    group = np.where(table, np.take(_DEFAULT_GROUP, np.minimum(c, 9)), c % 3)
    bg = np.where(table, np.take(_DEFAULT_BG, np.minimum(c, 9)), c % 5)
    rank = np.where(table, np.take(_DEFAULT_RANK, np.minimum(c, 9)), c)
    rank = np.argsort(np.argsort(rank))  # dense ranks for C < 10
    freq = (rank + 1.0)**-0.6  # mildly long-tailed, person first
    # Part hues 180/C apart (OpenCV hue), neighbouring ids far apart.
    step = next(
        k for k in range(3, num_classes + 3) if np.gcd(k, num_classes) == 1)
    hues = (c * step % num_classes) * 180.0 / num_classes
    part_rgb = np.stack([_hsv2rgb((h, 235, 245)) for h in hues])
    body_hsv = np.array([(12, 150, 150), (25, 70, 135), (108, 45, 150)],
                        np.float32)  # brown spots, khaki hide, steel panels
    return SynthVOCWorld(names, group, bg, freq / freq.sum(), part_rgb,
                         (c * 5 + c // 6) % len(PART_SHAPES), body_hsv)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:h, 0:w].astype(np.float32)


def _noise(rng, h: int, w: int, cell: float, octaves: int = 1) -> np.ndarray:
    """Smooth zero-mean unit-std value noise with features ~``cell`` px."""
    out = np.zeros((h, w), np.float32)
    for o in range(octaves):
        step = max(cell / 2**o, 1.0)
        g = rng.standard_normal(
            (int(h / step) + 2, int(w / step) + 2)).astype(np.float32)
        out += 0.5**o * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    return out / (out.std() + 1e-6)


def background(rng, family: int, h: int, w: int, s: float) -> np.ndarray:
    """A textured ``(h, w, 3)`` float RGB background of one family."""
    yy, xx = _grid(h, w)
    jit = rng.uniform([-6, -25, -25], [6, 25, 25])
    name = BACKGROUNDS[family]
    if name == 'sky':
        top, bottom = _hsv2rgb((108, 150, 190) +
                               jit), _hsv2rgb((100, 45, 240) + jit)
        t = (yy / h)[..., None]
        img = top * (1 - t) + bottom * t
        cloud = np.clip(_noise(rng, h, w, 28 * s, 3) - 0.3, 0, 1)[..., None]
        img = img * (1 - 0.7 * cloud) + 245 * 0.7 * cloud
    elif name == 'water':
        base = _hsv2rgb((95, 170, 140) + jit)
        warp = _noise(rng, h, w, 20 * s, 2)
        waves = np.sin(2 * np.pi * yy / rng.uniform(5, 9) / s + 1.5 * warp)
        img = base * (1 + 0.18 * waves)[..., None]
        img += 60 * (waves > 0.93)[..., None]
    elif name == 'grass':
        base = _hsv2rgb((45, 160, 130) + jit)
        blades = cv2.resize(
            rng.standard_normal((max(h // 10, 2), w)).astype(np.float32),
            (w, h),
            interpolation=cv2.INTER_CUBIC)
        tex = 0.15 * _noise(rng, h, w, 3 * s) + 0.12 * blades
        img = base * (1 + tex + 0.1 * _noise(rng, h, w, 30 * s))[..., None]
    elif name == 'road':
        img = _hsv2rgb((20, 15, 115) + jit) * (
            1 + 0.1 * _noise(rng, h, w, 1.5 * s, 2))[..., None]
        for _ in range(rng.integers(1, 3)):
            theta, off = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8)
            dist = np.abs((xx - w / 2) * np.cos(theta) +
                          (yy - h / 2) * np.sin(theta) - (off - 0.5) * h)
            img[dist < 1.5 * s] = _hsv2rgb((25, 60, 225) + jit)
    else:  # indoor: papered wall over a wooden floor
        horizon = rng.uniform(0.35, 0.8) * h
        wall = _hsv2rgb((18, 50, 200) +
                        jit) * (1 + 0.06 * np.sin(2 * np.pi * xx /
                                                  (6 * s)))[..., None]
        grain = np.sin(2 * np.pi * xx / rng.uniform(4, 8) / s +
                       4 * _noise(rng, h, w, 25 * s))
        floor = _hsv2rgb((14, 150, 120) + jit) * (1 + 0.2 * grain)[..., None]
        img = np.where((yy > horizon)[..., None], floor, wall)
    return img.astype(np.float32)


def _polygon(shape: str, cx: float, cy: float, area: float,
             theta: float) -> np.ndarray:
    """Vertices of a part shape of the given area, rotated by ``theta``."""
    n, radii = _SHAPE_VERTICES[shape]
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + theta
    rad = np.resize(np.asarray(radii), n)
    xy = np.stack([rad * np.cos(ang), rad * np.sin(ang)], -1)
    unit = 0.5 * abs(
        np.sum(xy[:, 0] * np.roll(xy[:, 1], 1) -
               xy[:, 1] * np.roll(xy[:, 0], 1)))  # shoelace
    return xy * np.sqrt(area / unit) + (cx, cy)


def _fill(h: int, w: int, pts: np.ndarray) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(
        mask, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


@dataclass(frozen=True)
class ObjectLook:
    """What one class of object looks like.

    Attributes:
        part_rgb (np.ndarray): ``(3,)`` the discriminative part's colour.
        part_shape (str): one of ``PART_SHAPES``.
        body_style (str): the body's texture, one of ``BODY_STYLES``.
        body_hsv (np.ndarray): ``(3,)`` OpenCV HSV base of the body colour.
    """
    part_rgb: np.ndarray
    part_shape: str
    body_style: str
    body_hsv: np.ndarray


def class_look(world: SynthVOCWorld, cls: int) -> ObjectLook:
    """The look of SynthVOC class ``cls`` (0-based): its own part on its
    group's body."""
    grp = int(world.group[cls]) % len(BODY_STYLES)
    return ObjectLook(world.part_rgb[cls], PART_SHAPES[world.part_shape[cls]],
                      BODY_STYLES[grp], world.body_hsv[grp])


def draw_object(
    rng,
    look: ObjectLook,
    h: int,
    w: int,
    s: float,
    area_range: Tuple[float, float] = AREA_RANGE,
    centre_range: Tuple[float, float] = (0.1, 0.9)
) -> dict:
    """Sample one object's geometry and appearance (not yet composited).

    Args:
        rng (np.random.Generator): the image's generator.
        look (ObjectLook): the object's class appearance.
        h, w (int): image size.
        s (float): texture scale (``min(h, w) / 128``).
        area_range (tuple[float, float]): object area as a fraction of the
            image; the side is drawn uniformly. Default: ``AREA_RANGE``.
        centre_range (tuple[float, float]): the body centre's range, as a
            fraction of the width and height. Default: (0.1, 0.9).
    """
    area = rng.uniform(*np.sqrt(area_range))**2 * h * w  # uniform side
    part_frac = rng.uniform(0.10, 0.18)
    aspect, theta = rng.uniform(1.0, 2.2), rng.uniform(0, np.pi)
    a = np.sqrt(area * (1 - part_frac) * aspect / np.pi)
    b = a / aspect
    cx, cy = rng.uniform(*centre_range) * w, rng.uniform(*centre_range) * h
    phi = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + sum(
        rng.uniform(-0.06, 0.06) * np.sin(k * phi + rng.uniform(0, 6))
        for k in (2, 3, 5))
    ex, ey = a * wobble * np.cos(phi), b * wobble * np.sin(phi)
    body = _fill(
        h, w,
        np.stack([
            cx + ex * np.cos(theta) - ey * np.sin(theta),
            cy + ex * np.sin(theta) + ey * np.cos(theta)
        ], -1))
    side = rng.choice((-1.0, 1.0))
    px = cx + side * 0.9 * a * np.cos(theta)
    py = cy + side * 0.9 * a * np.sin(theta)
    part = _fill(
        h, w,
        _polygon(look.part_shape, px, py, part_frac * area,
                 theta + rng.uniform(-0.3, 0.3)))
    # Appearance: the body's texture family is the group's, shared.
    yy, xx = _grid(h, w)
    xr = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    yr = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    shade = np.clip(1.1 - 0.45 * ((xr / a)**2 + (yr / b)**2), 0.55, 1.1)
    base = _hsv2rgb(look.body_hsv + rng.uniform([-5, -25, -30], [5, 25, 30]))
    style = look.body_style
    if style == 'spots':
        tex = np.where(_noise(rng, h, w, 5 * s) > 0.9, 0.5, 1.0)
    elif style == 'mottled':
        tex = 1 + 0.22 * _noise(rng, h, w, 9 * s, 2)
    else:
        period = rng.uniform(5, 9) * s
        tex = 1 + 0.2 * np.sign(np.sin(2 * np.pi * yr / period))
    body_rgb = base * (shade * tex)[..., None]
    part_rgb = look.part_rgb * rng.uniform(
        0.85, 1.05) * (1 + 0.05 * _noise(rng, h, w, 2 * s))[..., None]
    return dict(
        body=body,
        part=part,
        mask=body | part,
        body_rgb=body_rgb,
        part_rgb=part_rgb)


def composite(image: np.ndarray, obj: dict, s: float) -> np.ndarray:
    """Paint an object of :func:`draw_object` over ``image`` (soft edges)."""
    for key in ('body', 'part'):
        alpha = cv2.GaussianBlur(obj[key].astype(np.float32), (0, 0),
                                 0.6 * s)[..., None]
        image = image * (1 - alpha) + obj[key + '_rgb'] * alpha
    return image


def light_and_noise(rng, image: np.ndarray) -> np.ndarray:
    """A lighting gradient and sensor noise; the uint8 RGB image."""
    h, w = image.shape[:2]
    yy, xx = _grid(h, w)
    ang = rng.uniform(0, 2 * np.pi)
    light = 1 + 0.12 * ((xx / w - 0.5) * np.cos(ang) +
                        (yy / h - 0.5) * np.sin(ang))
    image = image * light[..., None] + rng.normal(0, 3, (h, w, 3))
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _ignore_border(label: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood holds another label (VOC's border)."""
    k = np.ones((3, 3), np.uint8)
    return cv2.dilate(label, k) != cv2.erode(label, k)


def _sample_classes(rng, world: SynthVOCWorld) -> Tuple[List[int], int]:
    """Classes of the objects (primary first) and the background family."""
    num_classes = len(world.freq)
    primary = int(rng.choice(num_classes, p=world.freq))
    bg = int(world.preferred_bg[primary]) if rng.random(
    ) < PREFERRED_BG_PROB else int(rng.integers(len(BACKGROUNDS)))
    classes = [primary]
    for _ in range(rng.choice(3, p=NUM_OBJECTS_PROBS)):
        same_bg = world.freq * (world.preferred_bg == bg)
        p = same_bg if rng.random() < COOCCUR_PROB and same_bg.sum(
        ) > 0 else world.freq
        classes.append(int(rng.choice(num_classes, p=p / p.sum())))
    return classes, bg


def _saliency(rng, inst: np.ndarray, objects: List[dict], h: int, w: int,
              s: float) -> np.ndarray:
    """A detector-like saliency map (uint8) from the instance map."""
    sal = np.zeros((h, w), np.float32)
    yy, xx = _grid(h, w)

    def blob(frac):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = np.sqrt(frac * h * w / np.pi)
        ra, rb = r * rng.uniform(0.7, 1.4), r * rng.uniform(0.7, 1.4)
        return ((xx - cx) / ra)**2 + ((yy - cy) / rb)**2 < 1

    for k, obj in enumerate(objects):
        vis = inst == k + 1
        if obj['area'] < SAL_MISS_AREA * h * w and rng.random(
        ) < SAL_MISS_PROB:
            continue
        # A detector's outline: the object grown or shrunk by a few pixels
        # with a wobbly edge.
        soft = cv2.GaussianBlur(vis.astype(np.float32), (0, 0), 2 * s)
        soft += 0.2 * _noise(rng, h, w, 6 * s) * (soft > 0.02)
        region = soft > rng.uniform(0.25, 0.75)
        sal[region] = np.maximum(sal[region], rng.uniform(0.6, 1.0))
        if rng.random() < SAL_HOLE_PROB:
            ys, xs = np.nonzero(vis)
            for _ in range(rng.integers(1, 3)):
                i = rng.integers(len(ys))
                r = np.sqrt(rng.uniform(0.05, 0.2) * len(ys) / np.pi)
                hole = (xx - xs[i])**2 + (yy - ys[i])**2 < r * r
                sal[hole & region] *= rng.uniform(0.0, 0.4)
    if rng.random() < SAL_FALSE_PROB:
        for _ in range(rng.integers(1, 3)):
            m = blob(rng.uniform(0.005, 0.04)) & (inst == 0)
            sal[m] = np.maximum(sal[m], rng.uniform(0.4, 0.9))
    sal = cv2.GaussianBlur(sal, (0, 0), rng.uniform(1.0, 2.5) * s)
    sal += 0.03 * _noise(rng, h, w, 8 * s)
    return np.clip(sal * 255 + 0.5, 0, 255).astype(np.uint8)


def render_sample(
    world: SynthVOCWorld,
    rng: np.random.Generator,
    size: Tuple[int, int] = (128, 128)) -> dict:
    """Render one SynthVOC image with its label, saliency and metadata.

    Args:
        world (SynthVOCWorld): the class definitions (``build_world``).
        rng (np.random.Generator): the image's random generator.
        size (tuple[int, int]): height and width. Default: (128, 128).

    Returns:
        dict: ``image`` (H, W, 3) uint8 RGB, ``label`` (H, W) uint8 (0
        background, 1..C, 255 ignore), ``saliency`` (H, W) uint8,
        ``part_mask`` (H, W) bool (visible discriminative parts),
        ``background`` (str) and ``objects``: per object, drawn back to
        front, ``cls`` (label value), ``area``/``part_area`` (pixels of the
        whole object/part) and ``visible``/``visible_part`` (pixels left
        after occlusion, the ignore border excluded).
    """
    h, w = size
    s = min(h, w) / 128.0
    classes, bg = _sample_classes(rng, world)
    image = background(rng, bg, h, w, s)
    inst = np.zeros((h, w), np.uint8)  # 1-based index of the visible object
    objects = []
    for cls in classes:
        for _ in range(6):  # re-place until every object stays visible
            obj = dict(
                draw_object(rng, class_look(world, cls), h, w, s), cls=cls)
            trial = np.where(obj['mask'], len(objects) + 1, inst)
            inner = ~_ignore_border(trial.astype(np.uint8))
            kept = [((trial == k + 1) & inner).sum()
                    for k in range(len(objects) + 1)]
            full = [o['mask'].sum() for o in objects + [obj]]
            if all(v >= max(MIN_VISIBLE * f, 0.004 * h * w)
                   for v, f in zip(kept, full)):
                break
        else:
            if objects:  # the primary object is always kept
                continue
        objects.append(obj)
        inst = trial.astype(np.uint8)
        image = composite(image, obj, s)
    image = light_and_noise(rng, image)
    cls_lut = np.array([0] + [o['cls'] + 1 for o in objects], np.uint8)
    label = cls_lut[inst]
    border = _ignore_border(label)
    label[border] = 255
    part_mask = np.zeros((h, w), bool)
    metas = []
    for k, obj in enumerate(objects):
        vis = (inst == k + 1) & ~border
        vis_part = vis & obj['part']
        part_mask |= vis_part
        metas.append(
            dict(
                cls=obj['cls'] + 1,
                area=int(obj['mask'].sum()),
                part_area=int(obj['part'].sum()),
                visible=int(vis.sum()),
                visible_part=int(vis_part.sum())))
    saliency = _saliency(rng, inst, metas, h, w, s)
    return dict(
        image=image,
        label=label,
        saliency=saliency,
        part_mask=part_mask,
        background=BACKGROUNDS[bg],
        objects=metas)
