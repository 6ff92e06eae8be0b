"""The stage-1 classifier: backbone + class-aware head, trained on tags.

.. code:: text

    loss():    inputs -> backbone -> F -> head.loss_and_predict(F, samples)
               -> losses
               -> maps -> MessageHub runtime info 'train_cams' (hooks)
    predict(): for each scale s (and its flip):
                   inputs_s -> backbone -> head.predict_cams -> ReLU
               sum -> crop padding -> resize to the original image
               -> keep the tagged classes -> max-normalise per class
               -> SegDataSample.pred_cams (L, H, W), pred_score (L,)
               -> with test_cfg.pseudo_label (export): the recipe on the
                  tagged classes' CAMs -> pred_sem_seg (1, H, W)

It runs under the MMEngine runner like an mmseg segmentor, so stage 1 trains
with ``tools/train.py`` and exports CAMs with ``tools/test.py``.
"""
import os.path as osp
from contextlib import contextmanager
from functools import partial
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from rca_mm.evaluation.functional import tagged_classes
from rca_mm.fileio import OAAStore, read_image
from rca_mm.registry import MODELS, PSEUDO_LABEL_RECIPES
from rca_mm.utils.arrays import to_numpy
from ..heads.cam_head import gap_scores
from ..postprocess.dense_crf import WorkerPool
from ..utils import max_normalize, predict_image_by_image


def set_scores(sample, scores: Tensor) -> None:
    """Image scores for mmpretrain's multi-label metrics: ``pred_score`` and,
    from the tags, ``gt_score``."""
    sample.pred_score = scores
    if 'gt_img_labels' in sample:
        sample.gt_score = sample.gt_img_labels


@MODELS.register_module()
class CAMClassifier(BaseSegmentor):
    """A multi-label classifier whose class maps are the CAMs.

    Args:
        backbone (dict): backbone config; its last output is ``F``.
        head (dict): head config (``CAMHead``, ``RCAHead``).
        neck (dict, optional): neck config. Default: None.
        data_preprocessor (dict, optional): ``SegDataPreprocessor`` config.
        train_cfg (dict, optional): unused; kept for the runner.
        test_cfg (dict, optional): CAM inference settings:

            - ``scales`` (Sequence[float]): input scales, default
              ``(1.0,)``; EPS and our VOC configs use (0.5, 1.0, 1.5, 2.0).
            - ``flip`` (bool): add horizontally flipped inputs, default
              False.
            - ``tags`` (str): ``'gt'`` keeps the maps of the image's own
              tags (CAM export on the training set, as every WSSS method);
              ``'pred'`` keeps classes scored above ``score_thr``.
              Default: ``'gt'``.
            - ``score_thr`` (float): default 0.5.
            - ``activation`` (str): how each scale's raw maps become CAMs:
              ``'relu'`` (CAM, PSA, IRN, OAA, RCA) or ``'softmax'`` over
              the L+1 maps before resizing (EPS's ``infer.py`` for its own
              network; needs ``model.head.with_background``). Default:
              ``'relu'``.
            - ``oaa_store`` (str, optional): take the CAMs from the maps that
              ``OAAAccumulationHook`` accumulated in this directory during
              training (OAA+) instead of running the network on scales.
              Default: None; a config with the hook has it set at test time
              by the hook (its store beside the checkpoint, or an error).
            - ``val_scales`` (Sequence[float]) and ``val_flip`` (bool): the
              scales and flips of validation during training
              (:meth:`val_step`). The validation metric, the multi-label
              mAP, reads the image scores, which come from the scale-1
              unflipped maps whatever ``scales`` are, so the export's extra
              scales and flips would only cost time. Default: ``(1.0,)``
              and False.
            - ``pseudo_label`` (dict, optional): the recipe that turns an
              image's CAMs into its pseudo label, a config of
              ``PSEUDO_LABEL_RECIPES``, e.g. ``dict(type='SaliencyRecipe',
              crf=True, crf_cfg=dict(alpha=4))``
              (:mod:`rca_mm.evaluation.recipes`). With it, :meth:`predict`
              also sets ``pred_sem_seg``; validation during training
              (:meth:`val_step`) does not. Default: None.
            - ``crf_workers`` (int): processes that run the recipe of a
              batch's images in parallel when it has a CRF (PSA's CRF is
              single-threaded C++ and dominates the export). They start on
              the first batch and serve the model's life. Parallelism is
              over the images of a batch: set ``test_dataloader.batch_size``
              to at least this. 0: in this process, as the authors' scripts
              do. Default: 0.
        init_cfg (dict, optional): initialisation.
    """

    def __init__(self,
                 *,
                 backbone: ConfigType,
                 head: ConfigType,
                 neck: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.head = MODELS.build(head)
        self.num_classes = self.head.num_classes
        self.train_cfg = train_cfg
        test_cfg = dict(test_cfg or {})
        self.scales: Sequence[float] = tuple(test_cfg.pop('scales', (1.0, )))
        self.flip: bool = test_cfg.pop('flip', False)
        self.tags: str = test_cfg.pop('tags', 'gt')
        self.score_thr: float = test_cfg.pop('score_thr', 0.5)
        self.oaa_store: Optional[str] = test_cfg.pop('oaa_store', None)
        self.activation: str = test_cfg.pop('activation', 'relu')
        self.val_scales: Sequence[float] = tuple(
            test_cfg.pop('val_scales', (1.0, )))
        self.val_flip: bool = test_cfg.pop('val_flip', False)
        pseudo_label = test_cfg.pop('pseudo_label', None)
        self.pseudo_label = None if pseudo_label is None else \
            PSEUDO_LABEL_RECIPES.build(pseudo_label)
        crf_workers = int(test_cfg.pop('crf_workers', 0))
        if test_cfg:
            raise ValueError(
                f'model.test_cfg has unknown keys {sorted(test_cfg)}; '
                'expected scales, flip, tags, score_thr, oaa_store, '
                'activation, val_scales, val_flip, pseudo_label, '
                'crf_workers')
        if crf_workers < 0:
            raise ValueError('model.test_cfg.crf_workers must be >= 0, got '
                             f'{crf_workers}')
        self.crf_pool = WorkerPool(crf_workers)
        if not self.scales or not self.val_scales:
            raise ValueError('model.test_cfg.scales and val_scales must not '
                             'be empty')
        if self.activation not in ('relu', 'softmax'):
            raise ValueError(
                "model.test_cfg.activation must be 'relu' or 'softmax', got "
                f'{self.activation!r}')
        if self.activation == 'softmax' and not getattr(
                self.head, 'with_background', False):
            raise ValueError(
                "model.test_cfg.activation='softmax' needs "
                'model.head.with_background=True (a softmax over the L+1 '
                'maps, as EPS)')
        if self.tags not in ('gt', 'pred'):
            raise ValueError(
                f"model.test_cfg.tags must be 'gt' or 'pred', got "
                f'{self.tags!r}')

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """The backbone's (and neck's) last feature map ``F``."""
        feats = self.backbone(inputs)
        if self.with_neck:
            feats = self.neck(feats)
        return feats[-1] if isinstance(feats, (list, tuple)) else feats

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """Named losses of a training batch (see the head), and the batch's
        training maps published for hooks.

        The maps go to this process's :class:`~mmengine.logging.MessageHub`
        (the current instance, the runner's), as the runtime info
        ``'train_cams'``: ``dict(cams, scores, data_samples)``, the head's
        final foreground maps ``(N, L, h, w)`` and image logits ``(N, L)``,
        detached, with the batch's samples. Each step replaces them; they
        are not saved in checkpoints (``resumed=False``).
        :class:`~rca_mm.engine.hooks.OAAAccumulationHook` reads them in
        ``after_train_iter``.

        Args:
            inputs (Tensor): the batch's images ``(N, 3, H, W)``.
            data_samples (list): the batch's samples.

        Returns:
            dict: the head's loss terms.
        """
        losses, maps = self.head.loss_and_predict(
            self.extract_feat(inputs), data_samples)
        MessageHub.get_current_instance().update_info(
            'train_cams', dict(maps, data_samples=data_samples), resumed=False)
        return losses

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Raw class maps at input resolution, one scale, no flip."""
        cams = self.head.predict_cams(self.extract_feat(inputs))
        return F.interpolate(
            cams, size=inputs.shape[2:], mode='bilinear', align_corners=False)

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None):
        """The head's raw maps (``mode='tensor'``)."""
        return self.head.predict_cams(self.extract_feat(inputs))

    def test_step(self, data: dict) -> list:
        """Predict a test batch; images of different sizes one by one.

        mmseg's ``SegDataPreprocessor`` stacks a test batch only when all
        its images have one size (``test_dataloader.batch_size > 1`` on a
        dataset of mixed sizes, as VOC); such a batch is predicted image by
        image, as :class:`CRFEncoderDecoder` does, and its pseudo labels
        made together (in the ``crf_workers``).

        Args:
            data (dict): a collated batch, ``inputs`` (list of (3, H, W)
                tensors) and ``data_samples``.

        Returns:
            list[:obj:`SegDataSample`]: the predictions, in batch order.
        """
        inputs = data['inputs']
        if isinstance(inputs, Tensor) or len(
            {tuple(x.shape[1:])
             for x in inputs}) <= 1:
            return super().test_step(data)
        with self.without_pseudo_labels():
            samples = predict_image_by_image(data, self.data_preprocessor,
                                             partial(self, mode='predict'))
        return self.add_pseudo_labels(samples)

    def val_step(self, data: dict) -> list:
        """:meth:`test_step` at ``test_cfg.val_scales`` and ``val_flip``
        (by default one scale, no flip) instead of the export's, and
        without pseudo labels (the validation metric reads the scores)."""
        scales, flip = self.scales, self.flip
        self.scales, self.flip = self.val_scales, self.val_flip
        try:
            with self.without_pseudo_labels():
                return self.test_step(data)
        finally:
            self.scales, self.flip = scales, flip

    @contextmanager
    def without_pseudo_labels(self) -> Iterator[None]:
        """Within the block, :meth:`predict` sets no ``pred_sem_seg``
        (validation; a batch labelled after its images are predicted one by
        one; RCA's P pass in :class:`~rca_mm.apis.CAMInferencer`)."""
        recipe, self.pseudo_label = self.pseudo_label, None
        try:
            yield
        finally:
            self.pseudo_label = recipe

    def multiscale_cams(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Activated maps summed over scales and flips, at input size.

        All flips of a scale go through the network as one batch; the image
        scores come from the scale-1, unflipped maps of the same pass (a
        separate forward when 1.0 is not among the scales).

        Returns:
            tuple: the maps ``(N, L[+1], H, W)`` and the image logits
            ``(N, L)``.
        """
        size = inputs.shape[2:]
        n = inputs.shape[0]
        total, scores = 0, None
        for scale in self.scales:
            x = inputs if scale == 1.0 else F.interpolate(
                inputs,
                scale_factor=scale,
                mode='bilinear',
                align_corners=False)
            if self.flip:
                x = torch.cat([x, x.flip(-1)])
            raw = self.head.predict_cams(self.extract_feat(x))
            if scale == 1.0:
                scores = gap_scores(raw[:n], self.num_classes)
            cams = raw.softmax(dim=1) if self.activation == 'softmax' \
                else F.relu(raw)
            cams = F.interpolate(
                cams, size=size, mode='bilinear', align_corners=False)
            if self.flip:
                plain, flipped = cams.chunk(2)
                cams = plain + flipped.flip(-1)
            total = total + cams
        if scores is None:
            scores = self.head.scores(self.extract_feat(inputs))
        return total, scores

    def predict(self, inputs: Tensor, data_samples: list) -> list:
        """Multi-scale (+flip) CAMs at the original image size.

        Each returned sample gets ``pred_cams`` (``(L, H, W)``, in [0, 1],
        zero for classes not kept), ``pred_score`` (sigmoid of the scale-1
        image scores, ``(L,)``), ``pred_bg`` (``(1, H, W)``) when the head
        predicts a background map, and with ``test_cfg.pseudo_label``
        ``pred_sem_seg`` (see :meth:`add_pseudo_labels`).
        """
        if self.oaa_store is not None:
            scores = self.head.scores(self.extract_feat(inputs)).float()
            return self.predict_from_store(data_samples, scores.sigmoid())
        cams, scores = self.multiscale_cams(inputs)
        # Float32 from here, also under autocast (tools/test.py --amp): the
        # recipes, the CRF and the writers read these maps.
        cams, scores = cams.float(), scores.float().sigmoid()
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            h, w = meta.get('img_shape', inputs.shape[2:])
            cam = cams[i:i + 1, :, :h, :w]
            ori_shape = meta.get('ori_shape', (h, w))
            if tuple(ori_shape[:2]) != (h, w):
                cam = F.interpolate(
                    cam,
                    size=ori_shape[:2],
                    mode='bilinear',
                    align_corners=False)
            cam = cam[0]
            if self.tags == 'gt' and 'gt_img_labels' in sample:
                keep = sample.gt_img_labels.to(cam.device) > 0
            else:
                keep = scores[i] > self.score_thr
            fg = cam[:self.num_classes] * keep[:, None, None]
            # Per-class max normalisation (as PSA/IRN/EPS CAM export).
            sample.set_data(dict(pred_cams=PixelData(data=max_normalize(fg))))
            set_scores(sample, scores[i])
            if cam.shape[0] > self.num_classes:
                bg = cam[self.num_classes:]
                sample.set_data(
                    dict(pred_bg=PixelData(data=max_normalize(bg))))
        return self.add_pseudo_labels(data_samples)

    def predict_from_store(self, data_samples: list, scores: Tensor) -> list:
        """OAA+: the accumulated maps of each image as its CAMs."""
        if not osp.isdir(self.oaa_store):
            raise FileNotFoundError(
                f'model.test_cfg.oaa_store: {self.oaa_store} is not a '
                'directory; point it at the oaa_store of the OAA training '
                'run (e.g. WORK_DIR/oaa_store)')
        store = OAAStore(self.oaa_store)
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            entry = store.load(meta['img_name'])
            maps = torch.from_numpy(entry.maps)[None].to(scores.device)
            maps = F.interpolate(
                maps,
                size=tuple(meta['ori_shape'][:2]),
                mode='bilinear',
                align_corners=False)[0]
            cams = maps.new_zeros((self.num_classes, ) + maps.shape[1:])
            cams[torch.from_numpy(entry.class_ids).to(cams.device)] = maps
            sample.set_data(
                dict(pred_cams=PixelData(data=max_normalize(cams))))
            set_scores(sample, scores[i])
        return self.add_pseudo_labels(data_samples)

    def add_pseudo_labels(self, data_samples: list) -> list:
        """Each image's pseudo label by ``test_cfg.pseudo_label``, as
        ``pred_sem_seg`` (``(1, H, W)``, 0 background, 1..L the classes, 255
        ignore); nothing without the setting.

        The recipe gets the CAMs of the image's tags (``gt_img_labels``;
        without them, the classes with a non-zero CAM), their class ids,
        the RGB image read from ``img_path`` when it needs one (the CRF),
        ``gt_saliency`` and ``pred_bg`` when the sample has them. A batch's
        images are labelled in ``test_cfg.crf_workers`` processes when the
        recipe has a CRF. An image that cannot be labelled (unreadable,
        no saliency for a saliency recipe) gets no ``pred_sem_seg`` but the
        reason, metainfo ``pseudo_label_error``, which the metric counts and
        lists.
        """
        if self.pseudo_label is None:
            return data_samples
        jobs, todo = [], []
        for sample in data_samples:
            try:
                jobs.append(self._recipe_inputs(sample))
                todo.append(sample)
            except (OSError, ValueError) as err:
                sample.set_metainfo(
                    dict(pseudo_label_error=f'{type(err).__name__}: {err}'))
        pool = self.crf_pool if self.pseudo_label.needs_image \
            else WorkerPool(0)
        outputs = pool.map(_run_recipe, [self.pseudo_label] * len(jobs), jobs)
        for sample, (labels, error) in zip(todo, outputs):
            if error is not None:
                sample.set_metainfo(dict(pseudo_label_error=error))
                continue
            device = sample.pred_cams.data.device
            sample.set_data(
                dict(
                    pred_sem_seg=PixelData(
                        data=torch.from_numpy(labels[None]).to(device))))
        return data_samples

    def _recipe_inputs(self, sample) -> tuple:
        """``(cams, class_ids, image, saliency, bg_map)``: the recipe's
        arguments for one image, as numpy arrays."""
        cams_all = to_numpy(sample.pred_cams.data).astype(np.float32)
        tags = None
        if 'gt_img_labels' in sample:
            tags = to_numpy(sample.gt_img_labels)
        tag_idx = tagged_classes(cams_all, tags)
        image = saliency = bg_map = None
        if self.pseudo_label.needs_image:
            image = _read_rgb(sample.metainfo['img_path'], cams_all.shape[1:])
        if 'gt_saliency' in sample:
            saliency = to_numpy(sample.gt_saliency.data)[0]
        if 'pred_bg' in sample:
            bg_map = to_numpy(sample.pred_bg.data)[0]
        return cams_all[tag_idx], tag_idx + 1, image, saliency, bg_map


def _run_recipe(recipe, args: tuple) -> tuple:
    """``(labels, None)``, or ``(None, reason)`` when the recipe refuses
    the image; run in a CRF worker or here."""
    cams, class_ids, image, saliency, bg_map = args
    try:
        return recipe(
            cams, class_ids, image=image, saliency=saliency,
            bg_map=bg_map), None
    except (OSError, ValueError) as err:
        return None, f'{type(err).__name__}: {err}'


def _read_rgb(path: str, shape: tuple) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB of the CAMs' size, for
    the CRF."""
    image, _ = read_image(path, channel_order='rgb', exif_orientation=True)
    if image.shape[:2] != tuple(shape):
        raise ValueError(f'image {path!r} is {image.shape[:2]} but its CAMs '
                         f'are {tuple(shape)} (predict must return CAMs at '
                         'the original size)')
    return image


__all__ = ['CAMClassifier']
