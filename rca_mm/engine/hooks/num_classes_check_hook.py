"""Check the model's class count against the dataset's before any step.

A ``classes.txt`` of 20 classes with ``num_classes`` left at 10 otherwise
ends in an ``IndexError`` or a tensor-shape ``RuntimeError`` deep in the
loss or the metric. :class:`NumClassesCheckHook` compares the counts as soon
as the loop's dataloaders exist and raises an error naming the config key
and the dataset's class file (:func:`check_num_classes`):

.. code:: text

    CAMClassifier        model.head.num_classes         = len(classes) - 1
    mmseg segmentor      model.decode_head.num_classes  = len(classes)
                         model.auxiliary_head.num_classes (each, if any)

Other models (an mmpretrain ``ImageClassifier`` on a dataset without a
background class) are not checked. ``tools/train.py`` and ``tools/test.py``
register it for every run (``build_runner``).
"""
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmseg.models import BaseSegmentor
from torch import nn

from rca_mm.datasets.transforms import check_num_classes
from rca_mm.models.classifiers import CAMClassifier
from rca_mm.registry import HOOKS


def _heads(model: nn.Module) -> List[Tuple[str, int, bool]]:
    """``(config key, num_classes, counts the background)`` of each head
    of ``model`` whose count must match the dataset."""
    while hasattr(model, 'module'):  # DDP, TTA wrappers
        model = model.module
    if isinstance(model, CAMClassifier):
        return [('model.head.num_classes', model.head.num_classes, False)]
    if not isinstance(model, BaseSegmentor):
        return []
    heads = [('model.decode_head', getattr(model, 'decode_head', None))]
    auxiliary = getattr(model, 'auxiliary_head', None)
    if isinstance(auxiliary, nn.ModuleList):
        heads += [(f'model.auxiliary_head.{i}', h)
                  for i, h in enumerate(auxiliary)]
    else:
        heads.append(('model.auxiliary_head', auxiliary))
    return [(f'{key}.num_classes', head.num_classes, True)
            for key, head in heads
            if getattr(head, 'num_classes', None) is not None]


def _class_file(dataset) -> str:
    """The dataset, and the class file its names come from when it has
    one."""
    root = getattr(dataset, 'data_root', None) or ''
    name = f'{type(dataset).__name__} (data_root {root!r}'
    classes_file = osp.join(root, 'classes.txt')
    if root and osp.isfile(classes_file):
        name += f', class file {classes_file!r}'
    return name + ')'


@HOOKS.register_module()
class NumClassesCheckHook(Hook):
    """Refuse a run whose model and dataset count classes differently.

    Checks the train and validation datasets at ``before_train`` and the
    test dataset at ``before_test``, ahead of every other hook (priority
    ``HIGHEST``: the memory bank's allocation indexes by class too).
    """

    priority = 'HIGHEST'

    def _check(self, runner, loop: Optional[object]) -> None:
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        metainfo = getattr(dataset, 'metainfo', None)
        if not metainfo or not metainfo.get('classes'):
            return
        for key, num_classes, with_background in _heads(runner.model):
            check_num_classes(
                metainfo,
                num_classes,
                key,
                with_background=with_background,
                source=_class_file(dataset))

    def before_train(self, runner) -> None:
        """Check the train and (when built) validation datasets."""
        self._check(runner, runner.train_loop)
        loop = runner._val_loop
        if not isinstance(loop, dict) and loop is not None:
            self._check(runner, loop)

    def before_test(self, runner) -> None:
        """Check the test dataset."""
        self._check(runner, runner.test_loop)
