"""mmseg's EncoderDecoder with DeepLabV2's extras: dense CRF at test time and
multi-scale input (MSC) training.

Stage 2 of weakly supervised segmentation (DeepLabV2 trained on pseudo
labels) is scored, in EPS, OAA, RCA and most WSSS papers, after DeepLabV2's
fully connected CRF. This segmentor is mmseg's ``EncoderDecoder`` unchanged
for training; at test (and validation) time it

1. runs the network on each image of the batch separately, so a test batch
   may hold images of different sizes (mmseg's data preprocessor refuses
   that), and
2. when ``test_cfg.crf`` is a dict, refines each image's softmax with
   :func:`~rca_mm.models.postprocess.dense_crf.dense_crf` against the
   ORIGINAL image read from ``img_path``, the images of a batch in parallel
   in ``test_cfg.crf_workers`` processes.

``pred_sem_seg`` is then the CRF result and ``seg_logits`` stays the raw
network output (at the original size), so ``tools/test.py --out`` writes the
CRF labels. mIoU without the CRF is the same run with
``--cfg-options model.test_cfg.crf=None`` (docs/deeplabv2.md).

With ``train_cfg.msc_scales`` (DeepLabV2's MSC, deeplab-pytorch's
``MSC``), a training step also runs the network on the input rescaled by
each scale, and the loss is the sum of the decode head's loss on every
scale's logits and on their element-wise max (the smaller logits resized to
the full-scale ones). With ``test_cfg.msc_scales`` the prediction is that
max, as deeplab-pytorch tests.

.. code:: text

    test_step(data):
        for each image: data_preprocessor -> EncoderDecoder.predict
                        (whole/slide inference, un-pad, un-flip, resize to
                        ori_shape)
        if crf: softmax(seg_logits) + image(img_path) -> dense_crf (pool)
                -> argmax -> pred_sem_seg
"""
from typing import Dict, List, Optional

import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig, SampleList,
                         add_prefix)
from torch import Tensor

from rca_mm.registry import MODELS
from ..postprocess.dense_crf import (DEEPLABV2_CRF_PARAMS, WorkerPool,
                                     dense_crf_batch, import_densecrf)
from ..utils import predict_image_by_image


@MODELS.register_module()
class CRFEncoderDecoder(EncoderDecoder):
    """EncoderDecoder with dense-CRF refinement and MSC (DeepLabV2).

    Args:
        backbone, decode_head, neck, auxiliary_head, data_preprocessor,
        pretrained, init_cfg: as in mmseg's :class:`EncoderDecoder`.
        train_cfg (dict, optional): ``msc_scales`` (Sequence[float]): the
            extra input scales of MSC training (deeplab-pytorch's VOC and
            COCO recipes: ``(0.5, 0.75)``); empty or absent: mmseg's
            single-scale loss. Default: None.
        test_cfg (dict, optional): mmseg's test settings (``mode='whole'`` or
            ``'slide'`` with ``crop_size``/``stride``) plus

            - ``crf`` (dict | None): dense-CRF parameters, the keyword
              arguments of ``dense_crf``; missing keys take DeepLabV2's
              values (``DEEPLABV2_CRF_PARAMS``: 10 iterations, Gaussian xy 1
              weight 3, bilateral xy 67 rgb 3 weight 4; deeplab-pytorch, as
              used by EPS and OAA). None: no CRF. Default: None.
            - ``msc_scales`` (Sequence[float]): predict the max of the
              logits of the full input and of the input at these scales
              (deeplab-pytorch tests so, with ``(0.5, 0.75)``). Default: ().
            - ``crf_workers`` (int): processes that run the CRFs of a test
              batch in parallel (0: in this process). Parallelism is over
              the images of a batch, so set the test dataloader's
              ``batch_size`` to at least this. The processes start on the
              first CRF batch and serve every later one (validation
              after validation) until the model is deleted or the
              program exits. Default: 0.

            Default: ``dict(mode='whole')``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        # mmseg reads test_cfg by attribute (test_cfg.mode).
        test_cfg = ConfigDict(
            dict(mode='whole') if test_cfg is None else test_cfg)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.msc_scales = self._parse_msc(train_cfg, 'train_cfg')
        self.test_msc_scales = self._parse_msc(test_cfg, 'test_cfg')
        self.crf_params = self._parse_crf(test_cfg.get('crf'))
        self.crf_workers = int(test_cfg.get('crf_workers', 0))
        if self.crf_workers < 0:
            raise ValueError('model.test_cfg.crf_workers must be >= 0, got '
                             f'{self.crf_workers}')
        self.crf_pool = WorkerPool(self.crf_workers)

    @staticmethod
    def _parse_msc(cfg: Optional[dict], name: str) -> tuple:
        scales = tuple((cfg or {}).get('msc_scales', ()))
        if any(not 0 < s < 1 for s in scales):
            raise ValueError(f'model.{name}.msc_scales must lie in (0, 1) '
                             f'(the full scale is always used), got {scales}')
        return scales

    @staticmethod
    def _parse_crf(crf: Optional[dict]) -> Optional[Dict[str, float]]:
        """Fill DeepLabV2's defaults in; check keys and that pydensecrf
        imports, so a bad setting fails when the model is built."""
        if crf is None:
            return None
        if not isinstance(crf, dict):
            raise TypeError('model.test_cfg.crf must be a dict of dense_crf '
                            f'parameters or None, got {type(crf).__name__}')
        unknown = set(crf) - set(DEEPLABV2_CRF_PARAMS)
        if unknown:
            raise ValueError(
                f'model.test_cfg.crf: unknown key(s) {sorted(unknown)}; '
                f'allowed: {sorted(DEEPLABV2_CRF_PARAMS)}')
        try:
            import_densecrf()
        except ImportError as err:
            raise ImportError(f'model.test_cfg.crf is set: {err} '
                              '(`--cfg-options model.test_cfg.crf=None` '
                              'tests without it)') from err
        return {**DEEPLABV2_CRF_PARAMS, **crf}

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """mmseg's loss, or with ``msc_scales`` the MSC loss.

        MSC: the decode head's loss on the logits of the full-scale input,
        of each rescaled input, and of their element-wise max, summed
        (prefixes ``decode.s1.0``, ``decode.s<scale>``, ``decode.max``).
        mmseg's head resizes the logits to the labels (deeplab-pytorch
        resizes the labels to the logits instead). An auxiliary head sees
        the full-scale features only.
        """
        if not self.msc_scales:
            return super().loss(inputs, data_samples)
        feats = self.extract_feat(inputs)
        outputs = self.msc_logits(inputs, self.msc_scales, feats)
        losses = {}
        for key, logits in outputs.items():
            losses.update(
                add_prefix(
                    self.decode_head.loss_by_feat(logits, data_samples),
                    f'decode.{key}'))
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats, data_samples))
        return losses

    def msc_logits(self,
                   inputs: Tensor,
                   scales: tuple,
                   feats: Optional[List[Tensor]] = None) -> Dict[str, Tensor]:
        """The logits of every input scale and their max (DeepLabV2 MSC).

        Returns:
            dict[str, Tensor]: ``s1.0`` (full scale), ``s<scale>`` for each
            of ``scales`` (at their own size) and ``max``, the element-wise
            max at the full-scale size.
        """
        if feats is None:
            feats = self.extract_feat(inputs)
        outputs = {'s1.0': self.decode_head(feats)}
        for scale in scales:
            small = resize(
                inputs,
                scale_factor=scale,
                mode='bilinear',
                align_corners=False)
            outputs[f's{scale}'] = self.decode_head(self.extract_feat(small))
        full = outputs['s1.0']
        outputs['max'] = torch.stack([full] + [
            resize(
                logits,
                size=full.shape[2:],
                mode='bilinear',
                align_corners=False)
            for key, logits in outputs.items() if key != 's1.0'
        ]).amax(dim=0)
        return outputs

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """mmseg's, or with ``test_cfg.msc_scales`` the MSC max."""
        if not self.test_msc_scales:
            return super().encode_decode(inputs, batch_img_metas)
        fused = self.msc_logits(inputs, self.test_msc_scales)['max']
        return self.decode_head.predict_by_feat(fused, batch_img_metas)

    def test_step(self, data: dict) -> SampleList:
        """Predict a test batch image by image, then apply the CRF if set.

        Args:
            data (dict): a collated batch, ``inputs`` (list of (3, H, W)
                tensors, sizes may differ) and ``data_samples``.

        Returns:
            list[:obj:`SegDataSample`]: ``seg_logits`` (raw, at the original
            size) and ``pred_sem_seg`` (CRF-refined when ``crf`` is set).
        """
        return self.refine_with_crf(
            predict_image_by_image(data, self.data_preprocessor,
                                   super().predict))

    def val_step(self, data: dict) -> SampleList:
        """Same as :meth:`test_step` (mmengine's convention)."""
        return self.test_step(data)

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[SampleList] = None) -> SampleList:
        """EncoderDecoder's prediction followed by the CRF when it is set.

        The CRF needs each sample's ``img_path`` (the original image).
        """
        return self.refine_with_crf(super().predict(inputs, data_samples))

    def refine_with_crf(self, samples: SampleList) -> SampleList:
        """Replace ``pred_sem_seg`` by the CRF's argmax (no-op without CRF).

        Args:
            samples (list[:obj:`SegDataSample`]): predictions whose
                ``seg_logits`` are at the original image size.

        Returns:
            list[:obj:`SegDataSample`]: the same samples, updated in place.
        """
        if self.crf_params is None or not samples:
            return samples
        paths: List[str] = []
        probs = []
        for sample in samples:
            path = sample.metainfo.get('img_path')
            if path is None:
                raise KeyError('model.test_cfg.crf needs `img_path` in each '
                               "sample's metainfo to read the original image")
            paths.append(path)
            logits = sample.seg_logits.data.float()
            # The CRF's unary: the network's softmax (DeepLabV2, Sec. 4).
            probs.append(torch.softmax(logits, dim=0).cpu().numpy())
        labels = dense_crf_batch(
            paths,
            probs,
            pool=self.crf_pool,
            return_labels=True,
            **self.crf_params)
        for sample, label in zip(samples, labels):
            device = sample.seg_logits.data.device
            sample.pred_sem_seg = PixelData(
                data=torch.from_numpy(label.astype('int64'))[None].to(device))
        return samples
