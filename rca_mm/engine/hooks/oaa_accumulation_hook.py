"""Online attention accumulation (OAA, Jiang et al., ICCV 2019, Sec. 3.1).

After each training step the class maps of the batch are merged into a
per-image store by element-wise maximum, so that the store ends up holding
the union of the object parts the classifier attended to over training.

.. code:: text

    before_train_iter   drop the maps of an earlier step
    after_train_iter    the step's maps (MessageHub 'train_cams')
                        gate, normalise, un-flip -> OAAMemory (max, float16)
                        memory over max_memory_mb -> flush
    after_train_epoch   flush, barrier              (before CheckpointHook)
    iteration ckpt due  flush, barrier              (before CheckpointHook)
    before_save_ckpt    flush
    flush               OAAMemory -> OAAStore: per image read, max, atomic
                        write under the store's file lock
    before_test         the store's place -> model.oaa_store (the export)
"""
import math
import os.path as osp
from typing import Dict, Optional, Sequence, Set

import torch
from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from torch import Tensor

from rca_mm.fileio import OAAMemory, OAAStore
from rca_mm.registry import HOOKS
from rca_mm.utils.dist_utils import unwrap_model

STORE_KEY = 'model.test_cfg.oaa_store'
# The MessageHub runtime info that carries a training step's maps.
TRAIN_CAMS = 'train_cams'


@HOOKS.register_module()
class OAAAccumulationHook(Hook):
    """Accumulate the training CAMs of every image; own their store.

    The maps come from the model through the runner's
    :class:`~mmengine.logging.MessageHub`: in each training step the model
    (:meth:`CAMClassifier.loss <rca_mm.models.classifiers.CAMClassifier.loss>`)
    sets the runtime info ``'train_cams'`` (``resumed=False``, so never in a
    checkpoint), a dict with ``cams`` (N, L, h, w) detached raw class maps
    at feature resolution in the training-input frame, ``scores`` (N, L)
    image logits and ``data_samples`` (the batch's ``SegDataSample`` list
    with ``img_name``, ``ori_shape``, ``img_shape``, ``flip``,
    ``flip_direction`` and ``gt_img_labels``). The hook removes it before
    each step and takes it after, so it only ever reads the maps of the step
    that just ran; a step that published none is an error.

    For each image and each tagged class ``c`` (OAA, Sec. 3.1; released
    ``models/vgg.py``):

    1. gate: ``c`` must be among the image's top-k scores, k = the number of
       tags (a class the classifier does not recognise adds no map);
    2. the part of the map covering the image is kept (batch padding to the
       bottom/right, from ``padding_size``, is cut off) and un-flipped;
    3. ``A_c = ReLU(cam_c) / max(ReLU(cam_c))`` (+1e-8) over that part;
    4. ``M_c <- max(M_c, A_c)`` (OAA Sec. 3.1).

    With ``fill_last_epoch`` (OAA's released code), in the last epoch a
    tagged class that has no stored map yet is written without the gate, so
    that every (image, tag) pair ends with a map. What is stored is read
    once, at the start of the last epoch, from the store (every process's
    maps, merged) and kept up to date from then on.

    The training pipeline must show the whole image (OAA resizes to a fixed
    size; no random crop), since each stored map is taken to cover the whole
    original image. The hook checks what it can: when the metainfo has a
    ``scale_factor`` (mmcv's ``Resize``/``RandomResize``), an ``img_shape``
    smaller than ``ori_shape * scale_factor`` by more than a pixel means a
    crop, and raises. The input size must also be fixed (all maps of an image
    have one size; :meth:`OAAMemory.update` and :meth:`OAAStore.update`
    refuse another).

    Where the maps are: each process holds the maps of the images it
    trains on in memory (:class:`OAAMemory`, float16 as the store) and
    merges them into the :class:`OAAStore` (one ``.npz`` per image) at the
    end of every epoch, before every checkpoint (every process, then a
    barrier, before the checkpoint is written), when the memory it holds
    passes ``max_memory_mb``, and at the end of training; each merge is an
    element-wise maximum with the file under a file lock, so the files are
    those of writing every map at once, bit for bit, whatever the number of
    processes. No file is read or written in a training step, except the
    step that passes ``max_memory_mb``.

    Resuming: the store lives in the work dir, beside the checkpoints. A
    killed run loses the maps held since its last write; every checkpoint
    comes after a write, so these are maps of iterations that ``--resume``
    trains again, and the store after the resumed run equals an
    uninterrupted run's (maps written after the last checkpoint are those
    the replayed iterations make again, and the maximum with them changes
    nothing). A run that starts from iteration 0 (not resumed) empties the
    store first (``reset_on_start``). With an iteration-based loop the epoch
    stays 0: use ``start_epoch=0``.

    Export: at test time the hook gives the model the store to take its
    CAMs from (OAA+): ``model.test_cfg.oaa_store`` when the command line
    sets it, else ``store_dir`` when set, else ``oaa_store`` in the
    directory of the checkpoint being tested (the training run's work dir).
    No store there is an error that names the option to pass; the
    network's own CAMs are never exported in its place.

    Args:
        start_epoch (int): first epoch (0-based) that accumulates. Default: 0
            (OAA's released code starts at epoch 1).
        store_dir (str, optional): store directory. Default: None, i.e.
            ``{work_dir}/oaa_store`` in training and ``oaa_store`` beside the
            checkpoint at test time.
        interval (int): accumulate every ``interval`` iterations. Default: 1.
        fill_last_epoch (bool): see above. Default: True.
        reset_on_start (bool): clear the store when training starts from
            iteration 0. Default: True.
        check_crop (bool): raise when the metainfo shows a crop.
            Default: True.
        max_memory_mb (float): write the maps held in memory to the store
            when their arrays (:attr:`OAAMemory.nbytes`) take more than this
            (MiB, per process); 0 writes after every step. Default: 1024,
            twice what we measured for COCO on one process: 2.2-2.3 KiB per
            (image, class) at OAA's 32x32 maps (256x256 input, stride 8),
            so an epoch of VOC's 10,582 images (1.5 tags each) holds 36 MiB
            and one of COCO's 82,783 (2.9 tags each) 524 MiB, split over
            the processes (docs/performance.md).
        flush_threads (int): images written concurrently by a flush (the
            writes wait on the file system more than on Python). Default: 8.
    """

    priority = 'LOW'

    def __init__(self,
                 *,
                 start_epoch: int = 0,
                 store_dir: Optional[str] = None,
                 interval: int = 1,
                 fill_last_epoch: bool = True,
                 reset_on_start: bool = True,
                 check_crop: bool = True,
                 max_memory_mb: float = 1024.,
                 flush_threads: int = 8) -> None:
        if interval < 1:
            raise ValueError(f'OAAAccumulationHook: interval must be >= 1, '
                             f'got {interval}')
        if max_memory_mb < 0:
            raise ValueError('OAAAccumulationHook: max_memory_mb must be '
                             f'>= 0, got {max_memory_mb}')
        if flush_threads < 1:
            raise ValueError('OAAAccumulationHook: flush_threads must be '
                             f'>= 1, got {flush_threads}')
        self.start_epoch = start_epoch
        self.store_dir = store_dir
        self.interval = interval
        self.fill_last_epoch = fill_last_epoch
        self.reset_on_start = reset_on_start
        self.check_crop = check_crop
        self.max_memory_mb = max_memory_mb
        self.flush_threads = flush_threads
        self.store: Optional[OAAStore] = None
        self.memory = OAAMemory()
        # Image -> class ids in the store, from the last epoch's start on.
        self._stored: Optional[Dict[str, Set[int]]] = None
        self._checkpoint_hook: Optional[CheckpointHook] = None

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
        self.memory.clear()
        self._stored = None
        self._checkpoint_hook = next((h for h in getattr(runner, 'hooks', ())
                                      if isinstance(h, CheckpointHook)), None)

    def before_train_epoch(self, runner) -> None:
        """Read what the store holds when the last epoch fills it."""
        if self.fill_last_epoch and self._is_last_epoch(runner) and \
                runner.epoch >= self.start_epoch and self._stored is None:
            self.flush()
            barrier()
            stored = [self._read_stored() if is_main_process() else None]
            broadcast_object_list(stored)
            self._stored = stored[0]

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Drop the maps an earlier step published."""
        runner.message_hub.pop_info(TRAIN_CAMS)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Merge the batch's gated, normalised CAMs into the memory; write
        the memory when it is full or a checkpoint follows."""
        record = runner.message_hub.pop_info(TRAIN_CAMS)
        if runner.epoch >= self.start_epoch and \
                self.every_n_train_iters(runner, self.interval):
            if record is None:
                model = unwrap_model(runner.model)
                raise RuntimeError(
                    f'OAAAccumulationHook: the model '
                    f'({type(model).__name__}) published no training maps '
                    f"in this step: the hook reads MessageHub's runtime "
                    f"info '{TRAIN_CAMS}' (cams, scores, data_samples), "
                    'which CAMClassifier.loss sets from its head; train a '
                    'CAMClassifier, or remove OAAAccumulationHook from '
                    'custom_hooks')
            self.accumulate(
                record['cams'], record['scores'], record['data_samples'],
                self.fill_last_epoch and self._is_last_epoch(runner))
            if self.memory.nbytes > self.max_memory_mb * 2**20:
                self.flush()
        if self._iteration_checkpoint_due(runner):
            self.flush()
            barrier()

    def after_train_epoch(self, runner) -> None:
        """Write the epoch's maps (before ``CheckpointHook`` saves)."""
        self.flush()
        barrier()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write what is held (nothing after the two writes above, unless
        another hook saves)."""
        self.flush()

    def after_train(self, runner) -> None:
        """Write what is left."""
        self.flush()
        barrier()

    def flush(self) -> None:
        """Merge the maps held in memory into the store; empty the memory."""
        if not len(self.memory):
            return
        if self.store is None:
            raise RuntimeError('OAAAccumulationHook: before_train has not '
                               'opened the store')
        written = self.memory.flush(self.store, self.flush_threads)
        if self._stored is not None:
            for name, ids in written.items():
                self._stored.setdefault(name, set()).update(ids)

    def before_test(self, runner) -> None:
        """Give the model the store of the training run (the OAA export)."""
        model = unwrap_model(runner.model)
        if getattr(model, 'oaa_store', '') is not None:
            return  # set on the command line (the model checks it), or no
            # model that reads a store
        checkpoint = getattr(runner, '_load_from', None)
        if self.store_dir:
            store_dir, where = self.store_dir, "the hook's store_dir"
        elif checkpoint:
            store_dir = osp.join(
                osp.dirname(osp.abspath(checkpoint)), 'oaa_store')
            where = f'beside the checkpoint {checkpoint}'
        else:
            store_dir = osp.join(runner.work_dir, 'oaa_store')
            where = 'in the work dir'
        if not osp.isdir(store_dir):
            raise FileNotFoundError(
                'OAAAccumulationHook: this config exports the maps '
                'accumulated during training (OAA), and there is no store '
                f'at {store_dir} ({where}); pass the training run\'s store '
                f'with --cfg-options {STORE_KEY}=TRAIN_WORK_DIR/oaa_store '
                '(or remove OAAAccumulationHook from custom_hooks to export '
                "the network's own CAMs)")
        model.oaa_store = store_dir
        print_log(
            f'OAAAccumulationHook: CAMs from the accumulated maps in '
            f'{store_dir}',
            logger='current')

    def _is_last_epoch(self, runner) -> bool:
        return runner.epoch + 1 == runner.max_epochs

    def _iteration_checkpoint_due(self, runner) -> bool:
        """Whether ``CheckpointHook`` saves after this iteration (it runs
        after this hook)."""
        hook = self._checkpoint_hook
        if hook is None or hook.by_epoch:
            return False
        return (hook.interval > 0 and self.every_n_train_iters(
            runner, hook.interval, hook.save_begin)) or (
                hook.save_last and self.is_last_train_iter(runner))

    def _read_stored(self) -> Dict[str, Set[int]]:
        """Image -> class ids in the store and in memory."""
        stored = {
            name: set(ids)
            for name, ids in self.store.stored_class_ids().items()
        }
        for name in self.memory.names():
            stored.setdefault(name, set()).update(self.memory.class_ids(name))
        return stored

    def accumulate(self, cams: Tensor, scores: Tensor, data_samples: Sequence,
                   fill_missing: bool) -> None:
        """Gate, normalise, un-flip and hold the maps of one batch.

        Args:
            cams (Tensor): (N, L, h, w) raw class maps.
            scores (Tensor): (N, L) image scores (logits).
            data_samples (Sequence[SegDataSample]): the batch's samples.
            fill_missing (bool): keep tagged classes that failed the gate
                when neither the store nor the memory has a map for them
                yet.
        """
        if self.store is None:
            raise RuntimeError('OAAAccumulationHook: before_train has not '
                               'opened the store')
        if fill_missing and self._stored is None:
            self._stored = self._read_stored()  # one process, no barrier
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
            if fill_missing:
                stored = self._stored.get(name, set()).union(
                    self.memory.class_ids(name))
            keep = [
                c for c in tags.tolist()
                if c in top_k or (fill_missing and c not in stored)
            ]
            if not keep:
                continue
            maps = self._to_image_frame(cam[keep], sample.metainfo)
            maps = maps.clamp(min=0)
            maps = maps / (maps.flatten(1).amax(1)[:, None, None] + 1e-8)
            # OAA Sec. 3.1: M_c <- max(M_c, A_c), element-wise, in memory.
            self.memory.update(name, keep, maps.numpy(),
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
