"""The CAMs, tags and pseudo label of any image, from a stage-1 classifier.

.. code:: text

    CAMInferencer(config, weights)          init_model: strict load
    inferencer(inputs, tags, saliency, out_dir, batch_size)
      inputs -> list (file, array, folder)  -> per image: read (grey / RGBA
                converted with a warning), the config's test transforms,
                PackWSSSInputs(num_classes=L); tags given -> gt_img_labels,
                none -> removed, so predict keeps score > score_thr;
                saliency given -> gt_saliency
      per batch:
        model.test_step                     -> O (final CAMs, Eq. 10 for
                                               RCA), scores, pred_bg (EPS),
                                               pred_sem_seg: the pseudo
                                               label by the recipe of
                                               model.test_cfg.pseudo_label
        RCA: test_step with P as the maps   -> P (Eq. 1), same tags, from
                                               the first pass's backbone
                                               features (shared_features),
                                               no pseudo label
        out_dir/pseudo_labels/<name>.png    label PNG (255 kept)
        out_dir/cams/<name>.npz             class_ids, cams (+ cams_p, bg,
                                               scores), float16
        out_dir/vis/<name>.png              the visualizer's panels

The CAMs are exactly ``CAMClassifier.predict``'s: the config's scales,
flip and activation, resized to the image and max-normalised per class. The
tags are the user's (class names) or the classes whose score passes
``model.test_cfg.score_thr`` (default 0.5: sigmoid(0), the decision
boundary of the multi-label soft-margin loss the classifier is trained
with, Eq. 11). The pseudo label is ``predict``'s ``pred_sem_seg``, made by
the recipe of the config's ``model.test_cfg.pseudo_label``, as under
``tools/test.py``; a config without one gives CAMs and tags, no label.
OAA+ takes its training CAMs from the maps accumulated
during training; those exist only for the training images, so any other
image gets the network's own CAMs here (a warning says so).
"""
import logging
import os
import os.path as osp
import warnings
from contextlib import contextmanager
from datetime import datetime
from typing import Dict, Iterator, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmengine.utils import ProgressBar

from rca_mm.fileio import (atomic_open, atomic_write_bytes, read_image,
                           read_saliency_map, save_label_png)
from rca_mm.registry import PSEUDO_LABEL_RECIPES, TRANSFORMS, VISUALIZERS
from .inference import init_model, load_config

InputType = Union[str, np.ndarray]
InputsType = Union[InputType, Sequence[InputType]]
TagsType = Union[None, Sequence[str], Sequence[Optional[Sequence[str]]]]

#: Image files listed from a folder input.
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Transforms of the config's test pipeline that the inferencer replaces:
#: its own reading, no annotations or saliency from the dataset layout.
_REPLACED = ('LoadWSSSImageFromFile', 'LoadImageFromFile',
             'LoadWSSSAnnotations', 'LoadAnnotations', 'LoadSaliencyMap',
             'PackWSSSInputs', 'PackSegInputs')


@contextmanager
def coarse_maps(head) -> Iterator[None]:
    """Within the block, ``head.predict_cams`` gives RCA's P (Eq. 1)
    instead of O (Eq. 10), so ``predict`` treats P exactly as O."""
    head.predict_cams = lambda feats: head.classify(head.features(feats))
    try:
        yield
    finally:
        del head.predict_cams


@contextmanager
def shared_features(model, cache: list, replay: bool) -> Iterator[None]:
    """Within the block, ``model.extract_feat`` records its outputs in
    ``cache`` (``replay=False``) or returns them again in the same order
    (``replay=True``), so a second ``predict`` on the same inputs (RCA's P)
    costs the head only, not the backbone."""
    original = model.extract_feat

    def replayed(inputs):
        if not cache or cache[0][0] != inputs.shape:
            raise RuntimeError(
                'CAMInferencer: the second pass asked for backbone features '
                f'of an input of shape {tuple(inputs.shape)} that the first '
                'pass did not compute')
        return cache.pop(0)[1]

    def recorded(inputs):
        feats = original(inputs)
        cache.append((inputs.shape, feats))
        return feats

    model.extract_feat = replayed if replay else recorded
    try:
        yield
    finally:
        del model.extract_feat


def _as_bgr(array: np.ndarray, what: str) -> tuple:
    """A (H, W, 3) uint8 BGR copy of an array input, and a note on what was
    converted (None when nothing was)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ValueError(f'{what}: expected a uint8 array (an image as '
                         f'mmcv.imread gives it), got '
                         f'{getattr(array, "dtype", type(array).__name__)}')
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        grey = array.reshape(array.shape[:2])
        return np.repeat(grey[..., None], 3, axis=2), \
            f'{what} is a grey image; converted to RGB'
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[..., :3]), \
            f'{what} is a BGRA image; its alpha channel was dropped'
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f'{what}: expected an (H, W, 3) BGR image, got '
                         f'shape {array.shape}')
    return np.ascontiguousarray(array), None


class CAMInferencer(BaseInferencer):
    """CAMs, tags and pseudo labels of images, in the shape of mmseg's
    ``MMSegInferencer``.

    Example::

        >>> from rca_mm.apis import CAMInferencer
        >>> inferencer = CAMInferencer(
        ...     'configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py',
        ...     'work_dirs/synthvoc_rca-eps_seed0/stage1/epoch_8.pth')
        >>> result = inferencer('photo.jpg', out_dir='outputs')
        >>> result['predictions']['tags'], result['predictions']['scores']

    Args:
        model (str | Config): the stage-1 config (a ``CAMClassifier``).
        weights (str, optional): its checkpoint, loaded strictly. Default:
            None (random weights, with a warning).
        device (str, optional): e.g. ``'cpu'``, ``'cuda:0'``. Default: None
            (CUDA when available).
        cfg_options (dict, optional): overrides of config keys. Default:
            None.
        score_thr (float, optional): the score a class needs to be a
            predicted tag. Default: None (``model.test_cfg.score_thr``, 0.5
            unless set).
        coarse_cams (bool): also give RCA's P maps (Eq. 1) beside the final
            O (Eq. 10); costs a second pass of the head (the backbone's
            features of the first pass are reused). Default: True.
        show_progress (bool): mmengine's progress bar over the images.
            Default: True.
    """

    preprocess_kwargs: set = {'tags', 'saliency'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'img_out_dir'}
    postprocess_kwargs: set = {'pred_out_dir'}

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 *,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 score_thr: Optional[float] = None,
                 coarse_cams: bool = True,
                 show_progress: bool = True) -> None:
        cfg = load_config(model, cfg_options)
        self.num_visualized_imgs = 0
        super().__init__(
            model=cfg, weights=weights, device=device, scope='rca_mm')
        self.show_progress = show_progress
        classifier = self.model
        if not hasattr(classifier, 'multiscale_cams'):
            raise TypeError(
                f'CAMInferencer needs a stage-1 classifier (CAMClassifier); '
                f'the config builds a {type(classifier).__name__}. Use '
                "mmseg's MMSegInferencer(config, weights, scope='rca_mm') "
                'for a segmentor')
        if classifier.dataset_meta is None:
            raise ValueError(
                'CAMInferencer: neither the checkpoint (meta.dataset_meta) '
                'nor the config (test_dataloader.dataset) names the classes')
        self.classes = tuple(classifier.dataset_meta['classes'])
        self.num_classes = classifier.num_classes
        if score_thr is not None:
            if not 0 <= score_thr <= 1:
                raise ValueError(f'score_thr must be in [0, 1], got '
                                 f'{score_thr}')
            classifier.score_thr = float(score_thr)
        self.score_thr = classifier.score_thr
        # User tags always count; without tags, the sample carries none and
        # predict keeps the classes above score_thr.
        classifier.tags = 'gt'
        self.with_coarse = coarse_cams and getattr(classifier.head, 'use_rsa',
                                                   False)
        self._oaa_note(cfg)
        #: The pseudo-label recipe of ``model.test_cfg.pseudo_label`` (None:
        #: no pseudo labels).
        self.recipe = classifier.pseudo_label
        self.visualizer.set_dataset_meta(
            classes=list(self.classes),
            palette=classifier.dataset_meta.get('palette'))

    # ------------------------------------------------------------ set-up
    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str) -> torch.nn.Module:
        return init_model(cfg, weights, device=device)

    def _init_pipeline(self, cfg: Config) -> Compose:
        """The config's test transforms between reading and packing (e.g. a
        resize), then ``PackWSSSInputs`` with the model's class count."""
        steps = [
            t for t in cfg.test_dataloader.dataset.pipeline
            if t['type'] not in _REPLACED
        ]
        return Compose([TRANSFORMS.build(t) for t in steps] + [
            TRANSFORMS.build(
                dict(
                    type='PackWSSSInputs', num_classes=self.model.num_classes))
        ])

    def _init_collate(self, cfg: Config):
        """mmengine's ``pseudo_collate``, as the test loaders use."""
        return pseudo_collate

    def _init_visualizer(self, cfg: Config):
        """The config's visualizer (a ``WSSSLocalVisualizer``) drawing into
        arrays only (no backends)."""
        vis_cfg = dict(
            cfg.get('visualizer') or dict(type='WSSSLocalVisualizer'))
        vis_cfg.update(
            name=f'cam_inferencer-{datetime.now().timestamp()}',
            vis_backends=None,
            save_dir=None)
        return VISUALIZERS.build(vis_cfg)

    def _oaa_note(self, cfg: Config) -> None:
        hooks = [h.get('type') for h in cfg.get('custom_hooks') or []]
        if self.model.oaa_store is None and \
                'OAAAccumulationHook' not in hooks:
            return
        self.model.oaa_store = None
        warnings.warn(
            'OAA+: the maps accumulated during training exist only for the '
            'training images (model.test_cfg.oaa_store); the CAMs given here '
            "are the network's own multi-scale CAMs")

    # ------------------------------------------------------------ inputs
    def _inputs_to_list(self, inputs: InputsType) -> list:
        """Files, arrays and the images of folders, as ``(name, source)``.

        Raises:
            FileNotFoundError: a path that does not exist, or a folder
                without images.
            ValueError: two inputs of one name (their outputs would
                collide).
        """
        if isinstance(inputs, (str, np.ndarray)):
            inputs = [inputs]
        items = []
        for i, item in enumerate(inputs):
            if isinstance(item, np.ndarray):
                items.append((f'{self.num_visualized_imgs + i:08d}', item))
                continue
            if not isinstance(item, str):
                raise TypeError(f'input {i}: expected an image path, a '
                                f'folder or an array, got '
                                f'{type(item).__name__}')
            if osp.isdir(item):
                files = sorted(
                    f for f in os.listdir(item)
                    if f.lower().endswith(IMAGE_SUFFIXES))
                if not files:
                    raise FileNotFoundError(f'folder {item!r} holds no image ('
                                            f'{", ".join(IMAGE_SUFFIXES)})')
                items += [(osp.splitext(f)[0], osp.join(item, f))
                          for f in files]
            elif osp.isfile(item):
                items.append((osp.splitext(osp.basename(item))[0], item))
            else:
                raise FileNotFoundError(f'input {item!r} does not exist')
        seen: Dict[str, object] = {}
        for name, source in items:
            if name in seen:
                raise ValueError(
                    f'two inputs are named {name!r} ({seen[name]!r} and '
                    f'{source!r}); their outputs would overwrite each other')
            seen[name] = source if isinstance(source, str) else 'an array'
        return items

    def _tag_ids(self, tags: Sequence[str]) -> List[int]:
        """0-based foreground ids of class names."""
        known = self.classes[1:]
        if isinstance(tags, str):
            tags = [tags]
        ids = []
        for tag in tags:
            if tag not in known:
                raise ValueError(
                    f'tags: {tag!r} is not a class of this model; its '
                    f'classes are {", ".join(known)}')
            ids.append(known.index(tag))
        return sorted(set(ids))

    def _per_image(self, value, names: List[str], what: str) -> list:
        """One entry of ``value`` per image: None, one for all, a list of
        one per image, or (saliency) a folder of ``<name>.png``."""
        count = len(names)
        if what == 'saliency' and isinstance(value, str) and \
                osp.isdir(value):
            return [osp.join(value, name + '.png') for name in names]
        if value is None or isinstance(value, str):
            return [value] * count
        value = list(value)
        if what == 'tags' and all(isinstance(v, str) for v in value):
            return [value] * count
        if len(value) != count:
            raise ValueError(f'{what}: {len(value)} entries for {count} '
                             f'images; give one for all or one per image')
        return value

    def _read(self, name: str, source: InputType, tags, saliency) -> dict:
        """One image through the pipeline; its saliency map, when given, as
        the sample's ``gt_saliency`` (the saliency recipe reads it)."""
        if isinstance(source, str):
            img, note = read_image(source)
            results = dict(img_path=source)
        else:
            img, note = _as_bgr(source, f'array input {name!r}')
            results = dict(img_path=None)
        if note is not None:
            warnings.warn(note)
        results.update(
            img=img,
            img_name=name,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2],
            sample_idx=0,
            img_labels=self._tag_ids(tags) if tags is not None else [])
        packed = self.pipeline(results)
        sample = packed['data_samples']
        if tags is None:
            del sample.gt_img_labels
        if saliency is not None:
            sal = read_saliency_map(saliency)
            if sal.shape != img.shape[:2]:
                raise ValueError(
                    f'saliency map {saliency!r} is {sal.shape[0]}x'
                    f'{sal.shape[1]} (HxW) but its image {name!r} is '
                    f'{img.shape[0]}x{img.shape[1]}')
            sample.gt_saliency = PixelData(data=torch.from_numpy(sal)[None])
        return dict(packed, name=name, rgb=img[..., ::-1])

    def preprocess(self,
                   inputs: list,
                   batch_size: int = 1,
                   *,
                   tags: TagsType = None,
                   saliency=None):
        """Batches of ``(collated data, per-image extras)``."""
        names = [name for name, _ in inputs]
        tags = self._per_image(tags, names, 'tags')
        saliency = self._per_image(saliency, names, 'saliency')
        if isinstance(self.recipe,
                      PSEUDO_LABEL_RECIPES.get('SaliencyRecipe')) and any(
                          s is None for s in saliency):
            raise ValueError(
                'the config\'s pseudo-label recipe (SaliencyRecipe, '
                'model.test_cfg.pseudo_label) needs a saliency map of every '
                'image: pass saliency= (demo: --saliency)')
        if self.recipe is not None and self.recipe.needs_image and any(
                not isinstance(source, str) for _, source in inputs):
            raise ValueError(
                'the config\'s pseudo-label recipe (model.test_cfg.'
                'pseudo_label) has a CRF, which reads each image from its '
                'file: pass image files, not arrays')
        batch = []
        for (name, source), tag, sal in zip(inputs, tags, saliency):
            batch.append(self._read(name, source, tag, sal))
            if len(batch) == batch_size:
                yield self._collate(batch)
                batch = []
        if batch:
            yield self._collate(batch)

    @staticmethod
    def _collate(batch: List[dict]):
        data = pseudo_collate([
            dict(inputs=b['inputs'], data_samples=b['data_samples'])
            for b in batch
        ])
        return data, batch

    # ------------------------------------------------------------ model
    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> list:
        """``predict``'s samples; with RCA, ``pred_cams_p`` (P) beside
        ``pred_cams`` (O), for the same tags."""
        if not self.with_coarse:
            return self.model.test_step(data)
        second = [s.clone() for s in data['data_samples']]
        cache: list = []
        with shared_features(self.model, cache, replay=False):
            preds = self.model.test_step(data)
        for pred, sample in zip(preds, second):
            sample.gt_img_labels = self._keep(pred).float()
        # The same multi-scale predict with P as the maps, on the features
        # of the first pass (the backbone runs once); no pseudo label (it
        # would be dropped, and a CRF costs seconds per image).
        with coarse_maps(self.model.head), \
                self.model.without_pseudo_labels(), shared_features(
                    self.model, cache, replay=True):
            coarse = self.model.test_step(
                dict(inputs=data['inputs'], data_samples=second))
        for pred, p in zip(preds, coarse):
            pred.set_data(
                dict(pred_cams_p=p.pred_cams, pred_score_p=p.pred_score))
        return preds

    def _keep(self, pred) -> torch.Tensor:
        """The classes ``predict`` kept: the tags, else score > thr."""
        if 'gt_img_labels' in pred:
            return pred.gt_img_labels > 0.5
        return pred.pred_score > self.score_thr

    # ------------------------------------------------------------ outputs
    def label(self, pred, extra: dict) -> Dict[str, np.ndarray]:
        """The numbers of one image and its pseudo label (``predict``'s
        ``pred_sem_seg``).

        Raises:
            ValueError: the recipe could not label the image (the reason
                ``predict`` gives).
        """
        keep = self._keep(pred).cpu().numpy()
        tag_idx = np.flatnonzero(keep)
        cams = pred.pred_cams.data.float().cpu().numpy()[tag_idx]
        out = dict(
            name=extra['name'],
            tags=[self.classes[i + 1] for i in tag_idx],
            class_ids=tag_idx + 1,
            tags_given='gt_img_labels' in pred,
            scores=pred.pred_score.float().cpu().numpy(),
            cams=cams,
            bg=None)
        if 'pred_cams_p' in pred:
            out['cams_p'] = pred.pred_cams_p.data.float().cpu().numpy(
            )[tag_idx]
        if 'pred_bg' in pred:
            out['bg'] = pred.pred_bg.data.float().cpu().numpy()[0]
        rgb = np.ascontiguousarray(extra['rgb'])
        if rgb.shape[:2] != cams.shape[1:]:
            rgb = cv2.resize(rgb, cams.shape[1:][::-1])
        if 'pseudo_label_error' in pred:
            raise ValueError(f'image {extra["name"]!r}: no pseudo label: '
                             f'{pred.pseudo_label_error}')
        out['pseudo_label'] = None
        if 'pred_sem_seg' in pred:
            out['pseudo_label'] = pred.pred_sem_seg.data[0].cpu().numpy(
            ).astype(np.uint8)
        out['rgb'] = rgb
        return out

    def visualize(self, result: dict, pred) -> np.ndarray:
        """The panels of one image: the visualizer's row of a classifier's
        sample (the image, the final CAM of each tag with its score, the
        background map, the pseudo label, the saliency map); for RCA a
        second row with P of each tag."""
        vis = self.visualizer
        rgb = result['rgb']
        rows = [[('image', rgb)] + vis.cam_panels(rgb, pred)]
        if 'cams_p' in result and len(result['tags']):
            rows.append([('P (Eq. 1)', rgb)] +
                        [(f'P {cls}',
                          vis.draw_heatmap(result['cams_p'][k], rgb))
                         for k, cls in enumerate(result['tags'])])
        return vis.draw_panels(rows)

    def save(self, result: dict, out_dir: str) -> None:
        """Write the label PNG, the ``.npz`` of the maps and the panels."""
        name = result['name']
        if result['pseudo_label'] is not None:
            save_label_png(result['pseudo_label'],
                           osp.join(out_dir, 'pseudo_labels', name + '.png'))
        arrays = dict(
            class_ids=np.asarray(result['class_ids'], np.int64),
            cams=result['cams'].astype(np.float16),
            scores=result['scores'].astype(np.float32),
            classes=np.asarray(self.classes[1:]))
        if 'cams_p' in result:
            arrays['cams_p'] = result['cams_p'].astype(np.float16)
        if result['bg'] is not None:
            arrays['bg'] = result['bg'].astype(np.float16)
        with atomic_open(osp.join(out_dir, 'cams', name + '.npz')) as f:
            np.savez_compressed(f, **arrays)
        if 'visualization' in result:
            ok, png = cv2.imencode(
                '.png',
                np.ascontiguousarray(result['visualization'][..., ::-1]))
            if not ok:
                raise OSError(f'could not encode the panels of {name!r}')
            atomic_write_bytes(
                osp.join(out_dir, 'vis', name + '.png'), png.tobytes())

    def postprocess(self,
                    preds,
                    visualization,
                    return_datasample=False,
                    **kwargs):
        """Not used: :meth:`__call__` labels, draws and writes per batch."""
        raise NotImplementedError('CAMInferencer handles each batch in '
                                  '__call__')

    def __call__(self,
                 inputs: InputsType,
                 *,
                 tags: TagsType = None,
                 saliency: Union[None, str, Sequence[Optional[str]]] = None,
                 batch_size: int = 1,
                 out_dir: str = '',
                 draw: bool = True,
                 return_datasamples: bool = False) -> dict:
        """Infer the CAMs, tags and pseudo label of each input.

        Args:
            inputs (str | np.ndarray | list): an image file, a folder of
                images, a uint8 BGR array (as ``mmcv.imread`` gives), or a
                list of those.
            tags (list, optional): class names: one list for every image,
                or one list (or None) per image. Default: None (the classes
                scored above ``score_thr``).
            saliency (str | list, optional): saliency maps (grey PNGs of
                the image's size), for a saliency recipe: one file per image,
                or a folder of ``<image name>.png``. Default: None.
            batch_size (int): images per forward pass (images of different
                sizes in a batch run one by one). Default: 1.
            out_dir (str): write ``pseudo_labels/<name>.png`` (with a
                recipe), ``cams/<name>.npz`` and ``vis/<name>.png`` here.
                Default: '' (write nothing).
            draw (bool): draw the panels (``visualization``). Default: True.
            return_datasamples (bool): return ``SegDataSample`` predictions
                (``pred_cams``, ``pred_score``, ``pred_sem_seg`` = the
                pseudo label, ``gt_saliency``, ...) instead of dicts.
                Default: False.

        Returns:
            dict: ``predictions``: per image a dict with ``name``, ``tags``
            (class names), ``class_ids`` (their label ids, 1..L),
            ``tags_given``, ``scores`` ((L,) sigmoid scores), ``cams``
            ((K, H, W) final CAMs of the tags, O for RCA), ``cams_p`` (RCA's
            P), ``bg`` (EPS background map or None), ``pseudo_label`` ((H,
            W) uint8, 255 ignore; None when the config sets no
            ``model.test_cfg.pseudo_label``); ``visualization``: the
            panels (H', W', 3) RGB per image. A single file or array gives
            the entries themselves, not lists.
        """
        single = isinstance(inputs, np.ndarray) or (isinstance(inputs, str)
                                                    and not osp.isdir(inputs))
        items = self._inputs_to_list(inputs)
        bar = ProgressBar(len(items)) if self.show_progress and \
            len(items) > 1 else None
        predictions, visualization = [], []
        for data, extras in self.preprocess(
                items, batch_size, tags=tags, saliency=saliency):
            for pred, extra in zip(self.forward(data), extras):
                result = self.label(pred, extra)
                if draw:
                    result['visualization'] = self.visualize(result, pred)
                    visualization.append(result['visualization'])
                if out_dir:
                    self.save(result, out_dir)
                if return_datasamples:
                    predictions.append(pred)
                else:
                    for key in ('rgb', 'visualization'):
                        result.pop(key, None)
                    predictions.append(result)
                self.num_visualized_imgs += 1
                if bar is not None:
                    bar.update()
        if out_dir:
            print_log(
                f'CAMInferencer: {len(items)} image(s) written under '
                f'{out_dir}',
                logger='current',
                level=logging.INFO)
        if single:
            return dict(
                predictions=predictions[0],
                visualization=visualization[0] if draw else None)
        return dict(
            predictions=predictions,
            visualization=visualization if draw else None)


__all__ = ['CAMInferencer', 'coarse_maps', 'shared_features', 'IMAGE_SUFFIXES']
