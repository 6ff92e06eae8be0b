"""The epoch-level events of RCA, carried out by the head's own methods.

.. code:: text

    before_run:          head.allocate_bank(tags of every training image),
                         in training runs only (runner.train())
    before_train_epoch:  head.begin_epoch(epoch)
                           alpha_1 on from model.head.rsc_warmup_epochs, Eq. 11
                           Q_l = k-means_K(written entries of class l), from
                           model.head.aggregation.start_epoch (Sec. 3.3)

The hook has no settings: K, the k-means and the warm-up are the head's
(``model.head.aggregation``, ``model.head.rsc_warmup_epochs``), set once.
"""
import torch
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

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
class RCAHook(Hook):
    """Drives RCA's epoch events through the head (``RCAHead``).

    ``before_run`` (before mmengine loads or resumes a checkpoint) sizes the
    memory bank from the training set's tags, so a resumed bank loads into
    tensors of its own shape and every rank allocates the same tensors;
    ``before_train_epoch`` starts the epoch on the head: the contrast
    warm-up and the k-means of the prototypes (on several processes rank 0
    clusters and broadcasts).

    A test or validation run (``tools/test.py``) neither builds the
    training set nor allocates the bank: inference reads the prototypes
    only, and a checkpoint's bank loads into the unallocated bank with its
    own shape.
    """

    priority = 'NORMAL'

    def __init__(self, **settings) -> None:
        if settings:
            raise ValueError(
                f'RCAHook has no settings, got {sorted(settings)}: RCA\'s '
                'settings are model.head\'s (the prototypes and their '
                'k-means: model.head.aggregation, e.g. '
                'model.head.aggregation.num_prototypes; the contrast '
                'warm-up: model.head.rsc_warmup_epochs)')

    @staticmethod
    def head(runner):
        head = unwrap_model(runner.model).head
        if not hasattr(head, 'allocate_bank'):
            raise TypeError(
                'RCAHook needs a model with an RCAHead (model.head), got '
                f'{type(head).__name__}')
        return head

    def before_run(self, runner) -> None:
        head = self.head(runner)
        if not _training(runner):
            return
        head.allocate_bank(
            dataset_tags(runner.train_dataloader.dataset, head.num_classes))

    def before_train_epoch(self, runner) -> None:
        self.head(runner).begin_epoch(runner.epoch)


def _training(runner) -> bool:
    """Whether this run trains: ``Runner.train`` builds its train loop
    before ``before_run``; ``Runner.test`` and ``Runner.val`` leave the
    ``train_cfg`` unbuilt (a dict, or None without one), and reading
    ``runner.train_dataloader`` would build the loop and its dataset."""
    return isinstance(getattr(runner, '_train_loop', None), BaseLoop)
