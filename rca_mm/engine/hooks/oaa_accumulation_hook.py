"""Online attention accumulation (OAA, Jiang et al., ICCV 2019, Sec. 3.1).

After each training step the class maps of the batch are merged into a
per-image store by element-wise maximum, so that the store ends up holding
the union of the object parts the classifier attended to over training.
"""
import math
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import Tensor

from rca_mm.registry import HOOKS
from rca_mm.utils.dist_utils import unwrap_model
from rca_mm.structures import OAAStore


@HOOKS.register_module()
class OAAAccumulationHook(Hook):
    """Accumulate the training CAMs of every image into an :class:`OAAStore`.

    The (unwrapped) model must expose, after each training step, the
    attribute ``last_train_cams``: a dict with ``cams`` (N, L, h, w) detached
    raw class maps at feature resolution in the training-input frame,
    ``scores`` (N, L) image logits and ``data_samples`` (the batch's
    ``SegDataSample`` list with ``img_name``, ``ori_shape``, ``img_shape``,
    ``flip``, ``flip_direction`` and ``gt_img_labels``).

    For each image and each tagged class ``c`` (OAA, Sec. 3.1; released
    ``models/vgg.py``):

    1. gate: ``c`` must be among the image's top-k scores, k = the number of
       tags (a class the classifier does not recognise adds no map);
    2. the part of the map covering the image is kept (batch padding to the
       bottom/right, from ``padding_size``, is cut off) and un-flipped;
    3. ``A_c = ReLU(cam_c) / max(ReLU(cam_c))`` (+1e-8) over that part;
    4. ``M_c <- max(M_c, A_c)`` in the store (OAA Sec. 3.1).

    With ``fill_last_epoch`` (OAA's released code), in the last epoch a
    tagged class that has no stored map yet is written without the gate, so
    that every (image, tag) pair ends with a map.

    The training pipeline must show the whole image (OAA resizes to a fixed
    size; no random crop), since each stored map is taken to cover the whole
    original image. The hook checks what it can: when the metainfo has a
    ``scale_factor`` (mmcv's ``Resize``/``RandomResize``), an ``img_shape``
    smaller than ``ori_shape * scale_factor`` by more than a pixel means a
    crop, and raises. The input size must also be fixed (all maps of an image
    have one size; :meth:`OAAStore.update` refuses another).

    Resuming: the store lives in the work dir and is not part of the
    checkpoint. Updates made between the last checkpoint and a crash stay in
    the store; after ``--resume`` those iterations run again and take the
    maximum with them, so the result is not bit-identical to an uninterrupted
    run but contains only maps of the same training. A run that starts from
    iteration 0 (not resumed) empties the store first (``reset_on_start``).
    With an iteration-based loop the epoch stays 0: use ``start_epoch=0``.

    Args:
        start_epoch (int): first epoch (0-based) that accumulates. Default: 0
            (OAA's released code starts at epoch 1).
        store_dir (str, optional): store directory. Default: None, i.e.
            ``{work_dir}/oaa_store``.
        interval (int): accumulate every ``interval`` iterations. Default: 1.
        fill_last_epoch (bool): see above. Default: True.
        reset_on_start (bool): clear the store when training starts from
            iteration 0. Default: True.
        check_crop (bool): raise when the metainfo shows a crop.
            Default: True.
    """

    priority = 'LOW'

    def __init__(self,
                 *,
                 start_epoch: int = 0,
                 store_dir: Optional[str] = None,
                 interval: int = 1,
                 fill_last_epoch: bool = True,
                 reset_on_start: bool = True,
                 check_crop: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'OAAAccumulationHook: interval must be >= 1, '
                             f'got {interval}')
        self.start_epoch = start_epoch
        self.store_dir = store_dir
        self.interval = interval
        self.fill_last_epoch = fill_last_epoch
        self.reset_on_start = reset_on_start
        self.check_crop = check_crop
        self.store: Optional[OAAStore] = None

    def before_train(self, runner) -> None:
        """Open the store; empty it when the run starts from scratch."""
        store_dir = self.store_dir or osp.join(runner.work_dir, 'oaa_store')
        if is_main_process():
            self.store = OAAStore(store_dir)
            if self.reset_on_start and runner.iter == 0:
                removed = self.store.clear()
                if removed:
                    print_log(
                        f'OAAAccumulationHook: removed {removed} maps of an '
                        f'earlier run from {store_dir}',
                        logger='current')
        barrier()
        self.store = OAAStore(store_dir)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Merge the batch's gated, normalised CAMs into the store."""
        if runner.epoch < self.start_epoch or \
                not self.every_n_train_iters(runner, self.interval):
            return
        model = unwrap_model(runner.model)
        record = getattr(model, 'last_train_cams', None)
        if record is None:
            raise RuntimeError(
                f'OAAAccumulationHook: the model ({type(model).__name__}) '
                'did not set `last_train_cams` in this training step; the '
                'hook needs a classifier that records its detached training '
                'CAMs, scores and data samples there')
        last_epoch = runner.epoch + 1 == runner.max_epochs
        self.accumulate(record['cams'], record['scores'],
                        record['data_samples'], self.fill_last_epoch
                        and last_epoch)

    def accumulate(self, cams: Tensor, scores: Tensor, data_samples: Sequence,
                   fill_missing: bool) -> None:
        """Gate, normalise, un-flip and store the maps of one batch.

        Args:
            cams (Tensor): (N, L, h, w) raw class maps.
            scores (Tensor): (N, L) image scores (logits).
            data_samples (Sequence[SegDataSample]): the batch's samples.
            fill_missing (bool): write tagged classes that failed the gate
                when the store has no map for them yet.
        """
        if self.store is None:
            raise RuntimeError('OAAAccumulationHook: before_train has not '
                               'opened the store')
        cams = cams.detach().float().cpu()
        scores = scores.detach().float().cpu()
        for cam, score, sample in zip(cams, scores, data_samples):
            tags = torch.nonzero(
                sample.gt_img_labels.detach().cpu() > 0.5).flatten()
            if tags.numel() == 0:
                continue
            # OAA's gate: a tag counts only if it is among the top-k scores.
            top_k = set(score.topk(tags.numel()).indices.tolist())
            name = sample.metainfo['img_name']
            stored = set()
            if fill_missing and name in self.store:
                stored = set(self.store.load(name).class_ids.tolist())
            keep = [
                c for c in tags.tolist()
                if c in top_k or (fill_missing and c not in stored)
            ]
            if not keep:
                continue
            maps = self._to_image_frame(cam[keep], sample.metainfo)
            maps = maps.clamp(min=0)
            maps = maps / (maps.flatten(1).amax(1)[:, None, None] + 1e-8)
            # OAA Sec. 3.1: M_c <- max(M_c, A_c), element-wise, in the store.
            self.store.update(name, keep, maps.numpy(),
                              sample.metainfo.get('ori_shape'))

    def _to_image_frame(self, maps: Tensor, meta: dict) -> Tensor:
        """Cut off the batch padding and undo the flip."""
        img_h, img_w = meta['img_shape'][:2]
        if self.check_crop and 'scale_factor' in meta and \
                'ori_shape' in meta:
            w_scale, h_scale = meta['scale_factor'][:2]
            ori_h, ori_w = meta['ori_shape'][:2]
            if img_h < ori_h * h_scale - 1 or img_w < ori_w * w_scale - 1:
                raise RuntimeError(
                    f'OAAAccumulationHook: image {meta.get("img_name")!r} '
                    f'was cropped (img_shape {tuple(meta["img_shape"])} < '
                    f'ori_shape {tuple(meta["ori_shape"])} x scale_factor '
                    f'{tuple(meta["scale_factor"])}); OAA needs whole '
                    'images: remove the random crop from the training '
                    'pipeline (or set check_crop=False)')
        # padding_size = (left, right, top, bottom), set by mmseg's
        # stack_batch; padding is only ever added to the right and bottom.
        pad = meta.get('padding_size') or (0, 0, 0, 0)
        in_h, in_w = img_h + pad[2] + pad[3], img_w + pad[0] + pad[1]
        h, w = maps.shape[-2:]
        valid_h = min(h, math.ceil(h * img_h / in_h))
        valid_w = min(w, math.ceil(w * img_w / in_w))
        maps = maps[:, :valid_h, :valid_w]
        if meta.get('flip', False):
            direction = meta.get('flip_direction', 'horizontal')
            dims = {
                'horizontal': [-1],
                'vertical': [-2],
                'diagonal': [-2, -1]
            }.get(direction)
            if dims is None:
                raise ValueError('OAAAccumulationHook: unknown '
                                 f'flip_direction {direction!r}')
            maps = maps.flip(dims)
        return maps
