"""RCA: regional semantic contrast and aggregation (Zhou et al., CVPR 2022).

.. code:: text

    F --conv1x1--> P --GAP--> p          L_CE(p, y)            (Eq. 1, 11)
    |               \\
    |                M_l = 1(P_l > mean P_l), f_l = MAP(F, M_l) (Eq. 2)
    |                   |-> L_RM(f_l, bank)  region mixup NCE   (Eq. 4-6)
    |                   |   over the regions of every process's images
    |                   '-> bank update, gated by sigma(p_l)    (Eq. 3)
    |
    '-> S = softmax(F Q^T), F' = S Q, F^ = [F, F']              (Eq. 7-9)
            --conv1x1--> O --GAP--> o    L_CE(o, y)            (Eq. 10, 11)

    L = a1 L_RM + a2 L_CE(p, y) + L_CE(o, y)                    (Eq. 11)

The final CAMs are ``O``. With ``with_background=True`` (RCA on EPS) both P
and O have L+1 maps and the saliency loss is applied to each; regions and
scores use the L foreground maps. ``use_rsc``/``use_rsa`` switch the two
parts off for the ablations of the paper's Section 4.2.

Every RCA setting is the head's, K and the k-means included
(``aggregation``). The epoch-level events are methods of the head, called
by ``RCAHook``:

.. code:: text

    before_run:         allocate_bank(tags of every training image)  (Eq. 3)
    before_train_epoch: begin_epoch(epoch)
                          -> set_contrast(epoch >= rsc_warmup_epochs) (Eq. 11)
                          -> refresh_prototypes(epoch): the Q of Eq. 7-8,
                             Q_l = k-means_K(written entries of class l)
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

from rca_mm.models.layers import masked_region_features
from rca_mm.registry import MODELS
from .cam_head import CAMHead, gap_scores, stack_img_labels


@MODELS.register_module()
class RCAHead(CAMHead):
    """The RCA head, on top of a CAM (or EPS) head.

    Args:
        in_channels (int): channels of the backbone's last feature map.
        num_classes (int): foreground classes L.
        num_convs (int): new 3x3 conv layers whose output is ``F``
            (see ``CAMHead``). Default: 0.
        channels (int): their channels, D when ``num_convs > 0``.
        dropout_ratio (float): dropout before both classifiers.
        with_background (bool): L+1 maps (EPS). Default: False.
        saliency_loss (dict, optional): EPS's saliency loss, applied to P
            and O. Default: None.
        loss_weight (float): alpha_2 of Eq. 11, weight of ``L_CE(p, y)``.
            Default: 0.4 (paper).
        loss_weight_o (float): weight of ``L_CE(o, y)``. Default: 1.0
            (paper).
        memory_bank (dict): ``RegionMemoryBank`` config (Eq. 3; gamma =
            0.99 in the paper).
        contrast_loss (dict): ``RegionContrastLoss`` config (Eq. 4-6); its
            ``loss_weight`` is alpha_1 = 0.01 (paper).
        aggregation (dict): ``PrototypeAggregation`` config (Eq. 7-8): the
            similarity ``scale``, and the prototypes' k-means (Sec. 3.3):
            K ``num_prototypes`` (paper: 10; None: every entry),
            ``num_iters`` (50), ``num_init`` restarts (3), the first
            clustered epoch ``start_epoch`` (1) and ``seed`` (0).
        gate_threshold (float): nu of Eq. 3: a region is written to the bank
            only when ``sigmoid(score_l) > nu``. Default: 0.7 (paper).
        gate_score (str): the score of that gate: ``'p'``, the coarse
            classifier's ``p_l`` as Eq. 3 writes it, or ``'o'``, the final
            classifier's score, as the released code does. Default: ``'p'``.
        use_rsc (bool): compute the contrast loss. Default: True.
        rsc_warmup_epochs (int): epochs with alpha_1 = 0 at the start
            (Eq. 11); the bank is still written, so the contrast has
            entries when it starts. Default: 1 (paper; the released code
            waits two).
        use_rsa (bool): aggregate prototypes and classify with O. Without it
            the final CAMs are P. Default: True.
        classifier_bias (bool): a zero-initialised, trained bias in both
            class-aware 1x1 convs (P and O), as OAA's and the released
            code's classifiers. Default: False (none).
        dropout_in_regions (bool): with dropout, whether the Eq. 2 masks
            and the Eq. 3 gate read the maps of the dropped-out features
            (the maps of the training losses, True) or maps of the undropped
            F, computed once more without gradient (False). Default: True.
        init_cfg (dict, optional): initialisation.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        num_convs: int = 0,
        channels: int = 512,
        dropout_ratio: float = 0.0,
        with_background: bool = False,
        saliency_loss: OptConfigType = None,
        loss_weight: float = 0.4,
        loss_weight_o: float = 1.0,
        memory_bank: ConfigType = dict(type='RegionMemoryBank'),
        contrast_loss: ConfigType = dict(
            type='RegionContrastLoss', loss_weight=0.01),
        aggregation: ConfigType = dict(type='PrototypeAggregation'),
        gate_threshold: float = 0.7,
        gate_score: str = 'p',
        use_rsc: bool = True,
        rsc_warmup_epochs: int = 1,
        use_rsa: bool = True,
        classifier_bias: bool = False,
        dropout_in_regions: bool = True,
        init_cfg: OptConfigType = dict(
            type='Normal', layer='Conv2d', std=0.01)
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            num_classes=num_classes,
            num_convs=num_convs,
            channels=channels,
            dropout_ratio=dropout_ratio,
            with_background=with_background,
            loss_weight=loss_weight,
            saliency_loss=saliency_loss,
            classifier_bias=classifier_bias,
            init_cfg=init_cfg)
        if not (use_rsc or use_rsa):
            raise ValueError(
                'model.head: use_rsc and use_rsa are both False; use CAMHead')
        if gate_score not in ('p', 'o') or (gate_score == 'o' and not use_rsa):
            raise ValueError(
                "model.head.gate_score must be 'p', or 'o' with use_rsa, got "
                f'{gate_score!r}')
        self.loss_weight_o = loss_weight_o
        self.gate_threshold = gate_threshold
        self.gate_score = gate_score
        self.use_rsc = use_rsc
        self.rsc_warmup_epochs = rsc_warmup_epochs
        self.use_rsa = use_rsa
        self.dropout_in_regions = dropout_in_regions
        dim = self.feat_channels
        self.memory_bank = MODELS.build(
            dict(memory_bank, num_classes=num_classes, feat_dim=dim))
        self.contrast_loss = MODELS.build(contrast_loss) if use_rsc else None
        if use_rsa:
            self.aggregation = MODELS.build(
                dict(aggregation, num_classes=num_classes, channels=dim))
            # Eq. 10: a second, independent class-aware 1x1 conv on [F, F'].
            self.classifier_o = self.class_conv(2 * dim)
        # alpha_1 = 0 in the warm-up epochs (set_contrast, begin_epoch).
        self._rsc_active = True

    def allocate_bank(self, image_labels: Tensor) -> None:
        """Size the memory bank from the training set's tags (Eq. 3).

        One slot per (image, tag) pair, or the per-class cap where one is
        set (COCO). Called before a checkpoint is loaded, so a resumed bank
        loads into tensors of its own shape (a loaded bank whose layout
        differs from these tags is refused).

        Args:
            image_labels (Tensor): ``(num_images, L)`` bool multi-hot tags
                indexed by ``sample_idx``.
        """
        self.memory_bank.allocate(image_labels)
        print_log(
            f'RCA memory bank: {self.memory_bank.feats.shape[0]} slots, '
            f'{self.memory_bank.nbytes / 2**20:.1f} MiB',
            logger='current')

    @property
    def rsc_active(self) -> bool:
        """Whether the contrast loss is on (off in the warm-up, Eq. 11)."""
        return self._rsc_active

    def set_contrast(self, active: bool) -> None:
        """Switch the contrast loss on or off (alpha_1 = 0 when off, Eq. 11).

        The bank is written either way.
        """
        self._rsc_active = bool(active)

    @torch.no_grad()
    def refresh_prototypes(self, epoch: int) -> bool:
        """Recompute the prototypes Q (k-means, Sec. 3.3) for ``epoch``.

        From ``aggregation.start_epoch`` on, with RSA: each class's written
        entries are clustered into K prototypes (the settings of
        ``aggregation``); before, Q stays unset and F' = 0 (Eq. 8).

        Args:
            epoch (int): the epoch starting.

        Returns:
            bool: whether the prototypes were recomputed.
        """
        if not self.use_rsa or epoch < self.aggregation.start_epoch:
            return False
        entries, mask = self.memory_bank.per_class_entries()
        k = self.aggregation.cluster(entries, mask, epoch)
        valid = int(self.aggregation.prototype_valid.sum())
        print_log(
            f'RCA prototypes: {valid} from {int(mask.sum())} bank '
            f'entries (K={k})',
            logger='current')
        return True

    def begin_epoch(self, epoch: int) -> None:
        """The events of an epoch start: the contrast is on from
        ``rsc_warmup_epochs`` (Eq. 11), and the prototypes are refreshed
        (:meth:`refresh_prototypes`).

        Args:
            epoch (int): the epoch starting (0-based).
        """
        self.set_contrast(epoch >= self.rsc_warmup_epochs)
        self.refresh_prototypes(epoch)

    def classify_o(self, x: Tensor, dropout: bool = True) -> Tensor:
        """``O = conv1x1([F, S Q])`` of ``F`` (Eq. 7-10).

        Args:
            x (Tensor): F, ``(N, D, h, w)``.
            dropout (bool): apply the head's dropout to ``[F, F']``.
                Default: True.
        """
        fused = torch.cat([x, self.aggregation(x)], dim=1)  # Eq. 9
        return self.classifier_o(self.dropout(fused) if dropout else fused)

    def predict_cams(self, feats: Tensor) -> Tensor:
        """The final CAMs: O (P when RSA is off)."""
        x = self.features(feats)
        return self.classify_o(x) if self.use_rsa else self.classify(x)

    def loss_and_predict(
            self, feats: Tensor,
            data_samples: list) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """Eq. 11's terms, the bank update of Eq. 3, and the final maps.

        :meth:`loss` returns the first item only.

        Args:
            feats (Tensor): the backbone's feature map ``(N, C, h, w)``.
            data_samples (list): the batch's samples, with ``gt_img_labels``
                and metainfo ``sample_idx``.

        Returns:
            tuple: the loss dict, ``loss_cls_p``, ``loss_rsc`` (and
            ``loss_cls_o``, ``loss_sal_p``, ``loss_sal_o`` where
            configured), and ``dict(cams, scores)`` of the final classifier
            (O, or P without RSA), detached.
        """
        labels = stack_img_labels(data_samples).to(feats.device)
        feats = self.features(feats)  # F
        cams_p = self.classify(feats)  # Eq. 1
        losses = self.map_losses(cams_p, labels, data_samples, 'p',
                                 self.loss_weight)
        # The maps of the Eq. 2 masks and of the Eq. 3 gate.
        region_cams = cams_p.detach()
        undropped = not (self.dropout_in_regions
                         or isinstance(self.dropout, nn.Identity))
        if undropped:
            with torch.no_grad():
                region_cams = self.classifier(feats)
        # Eq. 2: one region per (image, tag), pooled from F under P's mask.
        region_feats, region_classes, region_idx = masked_region_features(
            feats, region_cams[:, :self.num_classes], labels)
        # Made on the host and sent without waiting for the device.
        image_ids = torch.tensor(
            [ds.metainfo['sample_idx'] for ds in data_samples]).to(
                feats.device, non_blocking=True)[region_idx]
        if self.use_rsc:
            losses['loss_rsc'] = self.rsc_loss(region_feats, region_classes,
                                               image_ids)
        final = cams_p
        if self.use_rsa:
            final = self.classify_o(feats)
            losses.update(
                self.map_losses(final, labels, data_samples, 'o',
                                self.loss_weight_o))
        # Eq. 3: after the loss is formed, write the gated regions. The write
        # is deferred to the bank's next read: the RSC loss holds the bank's
        # buffer (no copy) for its backward pass.
        gate_cams = region_cams
        if self.gate_score == 'o':
            gate_cams = final.detach()
            if undropped:
                with torch.no_grad():
                    gate_cams = self.classify_o(feats, dropout=False)
        scores = gap_scores(gate_cams, self.num_classes)
        gate = scores[region_idx, region_classes].sigmoid() > \
            self.gate_threshold
        self.memory_bank.update(
            region_feats.detach(), region_classes, image_ids, gate, defer=True)
        return losses, self.train_outputs(final)

    def rsc_loss(self, region_feats: Tensor, region_classes: Tensor,
                 image_ids: Tensor) -> Tensor:
        """alpha_1 * L_RM against the bank (Eq. 4-6); 0 in the warm-up."""
        if not self._rsc_active:
            return region_feats.sum() * 0.0
        bank_feats, bank_classes = self.memory_bank.entries()
        return self.contrast_loss(region_feats, region_classes, image_ids,
                                  bank_feats, bank_classes)


__all__ = ['RCAHead']
