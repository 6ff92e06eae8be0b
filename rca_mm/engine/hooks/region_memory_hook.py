"""Epoch-level events of RCA's memory: sizing the bank and k-means (Sec. 3.3).

.. code:: text

    before_run:          bank.allocate(tags of every training image)
    before_train_epoch:  Q_l = k-means_K(written entries of class l)
                         -> head.aggregation.set_prototypes(Q, valid)
"""
from typing import Optional

import torch
from mmengine.dist import broadcast, is_distributed
from mmengine.hooks import Hook

from rca_mm.models.memory import batched_kmeans
from rca_mm.registry import HOOKS
from rca_mm.utils.dist_utils import unwrap_model


def dataset_tags(dataset, num_classes: int) -> torch.Tensor:
    """Multi-hot tags ``(num_images, L)`` indexed by ``sample_idx``.

    Raises:
        KeyError: the dataset's samples carry no ``img_labels``.
    """
    tags = torch.zeros(len(dataset), num_classes, dtype=torch.bool)
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        if 'img_labels' not in info:
            raise KeyError(
                f'train_dataloader.dataset ({type(dataset).__name__}) gives '
                'no img_labels; RCA needs a WSSS dataset (e.g. '
                'WSSSVOCDataset)')
        tags[idx, list(info['img_labels'])] = True
    return tags


@HOOKS.register_module()
class RegionMemoryHook(Hook):
    """Sizes RCA's region memory bank and clusters it each epoch (k-means).

    The bank gets one slot per (training image, tag) pair, or the per-class
    cap (COCO), before the checkpoint is resumed, so a resumed bank loads
    into tensors of its own shape. Prototypes are recomputed at the start
    of every epoch from ``start_epoch`` on (the released code clusters from
    epoch 1; at epoch 0 the bank is empty and F' = 0); on several processes
    rank 0 clusters and broadcasts, so every replica aggregates with the
    same prototypes.

    Args:
        num_prototypes (int): K, the k-means clusters per class. ``None`` keeps every written entry
            as a prototype (the "all" ablation). Default: 10 (paper).
        num_iters (int): Lloyd iterations. Default: 50.
        num_init (int): k-means++ restarts, the best kept. Default: 3.
        start_epoch (int): first epoch that clusters. Default: 1.
        seed (int): k-means seed (the epoch is added). Default: 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 *,
                 num_prototypes: Optional[int] = 10,
                 num_iters: int = 50,
                 num_init: int = 3,
                 start_epoch: int = 1,
                 seed: int = 0) -> None:
        self.num_prototypes = num_prototypes
        self.num_iters = num_iters
        self.num_init = num_init
        self.start_epoch = start_epoch
        self.seed = seed

    @staticmethod
    def head(runner):
        head = unwrap_model(runner.model).head
        if not hasattr(head, 'memory_bank'):
            raise TypeError(
                'RegionMemoryHook needs a model with an RCAHead '
                f'(model.head), got {type(head).__name__}')
        return head

    def before_run(self, runner) -> None:
        head = self.head(runner)
        tags = dataset_tags(runner.train_dataloader.dataset,
                            head.num_classes)
        # A bank loaded from a checkpoint keeps its content if its layout
        # matches these tags (and is refused if not).
        head.memory_bank.allocate(tags)
        runner.logger.info(
            f'RCA memory bank: {head.memory_bank.feats.shape[0]} slots, '
            f'{head.memory_bank.nbytes / 2**20:.1f} MiB')

    def before_train_epoch(self, runner) -> None:
        head = self.head(runner)
        if not head.use_rsa or runner.epoch < self.start_epoch:
            return
        bank = head.memory_bank
        entries, mask = bank.per_class_entries()
        k = self.num_prototypes or max(int(mask.sum(1).max()), 1)
        centers, valid, _ = batched_kmeans(
            entries, mask, k, num_iters=self.num_iters,
            n_init=self.num_init, seed=self.seed + runner.epoch)
        if is_distributed():
            broadcast(centers, 0)
            broadcast(valid, 0)
        head.aggregation.set_prototypes(centers, valid)
        runner.logger.info(
            f'RCA prototypes: {int(valid.sum())} from '
            f'{int(mask.sum())} bank entries (K={k})')
