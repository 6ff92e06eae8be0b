"""The pseudo-region memory bank (Eq. 3).

.. code:: text

    allocate(image_labels (num_images, L))   once, from the training set's tags
        class l owns slots [class_offset[l], class_offset[l + 1])
    update(f (R, D), classes, image_ids, gate)   after each step
        all_gather over ranks (rank order) -> the same update everywhere
        defer=True: the write waits for the next read (flush), so a loss
        that read the bank in place keeps it unchanged for its backward
        (image, class) resident   ->  m <- gamma m + (1 - gamma) f    Eq. 3
        not resident, free slot   ->  m <- f   (first write initialises)
        not resident, class full  ->  evict the least recently updated
                                      entry of the class, m <- f
    entries() -> (feats (S, D) in place, classes (S,), -1 = unwritten)
                                                            for Eq. 4-6
    written_entries() -> a copy of the written rows (W, D), classes (W,)
    num_written() -> slots written so far
    per_class_entries() -> (L, max_slots, D), mask          for k-means

Every piece of state is a tensor buffer, so the bank moves with the module,
is saved in ``state_dict`` and resumes without shape mismatches. The lookup
``(class, image) -> slot`` is a dense int32 table ``(L, num_images)``
(O(1) gathers; 0.8 MB for VOC, 26 MB for COCO). It is derived from
``slot_class`` and ``slot_image`` and rebuilt after loading, so it is not
saved.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from mmengine.model import BaseModule
from torch import Tensor

from rca_mm.registry import MODELS

_DTYPES = {'float32': torch.float32, 'float16': torch.float16}
_PERSISTENT = ('feats', 'written', 'slot_class', 'slot_image', 'last_update',
               'step', 'class_offset', 'num_images')
_PER_SLOT = ('feats', 'written', 'slot_class', 'slot_image', 'last_update')


def empty_bank_state(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """A state dict whose every region memory bank is unallocated.

    Inference needs no bank (the O maps use the prototypes only), so a
    released checkpoint can drop the entries: each ``...memory_bank.<buffer>``
    becomes that of a freshly built bank (no slots, zero counters). The keys
    stay, so the file loads strictly into the same model; a bank already
    allocated for training keeps its empty slots.

    Args:
        state_dict (dict[str, Tensor]): a model's state dict.

    Returns:
        dict[str, Tensor]: the same dict with emptied bank buffers.
    """
    out = {}
    for key, value in state_dict.items():
        prefix, _, name = key.rpartition('.')
        if not prefix.endswith('memory_bank') or name not in _PERSISTENT:
            out[key] = value
        elif name in _PER_SLOT:
            out[key] = value[:0].clone()
        else:
            out[key] = torch.zeros_like(value)
    return out


def all_gather_regions(feats: Tensor, classes: Tensor, image_ids: Tensor,
                       gate: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Concatenate the regions of all processes in rank order.

    Each rank pads its regions to the largest count across ranks for the
    collective and the padding is dropped afterwards. Without an initialised
    process group (or with one process) the inputs are returned unchanged.

    Args:
        feats (Tensor): ``(R, D)`` float.
        classes (Tensor): ``(R,)``.
        image_ids (Tensor): ``(R,)``.
        gate (Tensor): ``(R,)`` bool.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: the global
        ``(feats, classes, image_ids, gate)``.
    """
    if not (dist.is_available() and dist.is_initialized()) or \
            dist.get_world_size() == 1:
        return feats, classes, image_ids, gate
    world = dist.get_world_size()
    count = torch.tensor([feats.shape[0]], device=feats.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    pad = max(counts)
    meta = torch.stack([classes.long(), image_ids.long(), gate.long()], dim=1)
    feats_p = feats.new_zeros((pad, feats.shape[1]))
    feats_p[:feats.shape[0]] = feats
    meta_p = meta.new_zeros((pad, 3))
    meta_p[:meta.shape[0]] = meta
    all_feats = [torch.empty_like(feats_p) for _ in range(world)]
    all_meta = [torch.empty_like(meta_p) for _ in range(world)]
    dist.all_gather(all_feats, feats_p)
    dist.all_gather(all_meta, meta_p)
    feats = torch.cat([f[:c] for f, c in zip(all_feats, counts)])
    meta = torch.cat([m[:c] for m, c in zip(all_meta, counts)])
    return feats, meta[:, 0], meta[:, 1], meta[:, 2].bool()


@MODELS.register_module()
class RegionMemoryBank(BaseModule):
    """Per-class memory of pseudo-region features, one entry per image (Eq. 3).

    An entry belongs to one (image, class) pair of the training set. Its
    first observation initialises it (``m = f``); later ones blend
    ``m <- gamma m + (1 - gamma) f`` (Eq. 3). Entries never written take
    no part in the loss or the clustering: every accessor leaves them out
    or marks them (class -1 in :meth:`entries`, ``mask`` in
    :meth:`per_class_entries`); the released code instead starts from
    random entries. The caller gates the update (paper: ``y_l = 1`` and
    ``sigmoid(p_l) > 0.7``).

    Sizing (``capacity_per_class``): None is the paper's "adaptive" size,
    one slot per (image, class) pair with that tag (VOC), never evicted; an
    int caps each class at ``min(cap, images with the class)`` slots
    (paper's COCO: 500). A resident image keeps its entry, so the momentum
    still applies; when a full class sees a new image, the entry of the
    class updated least recently is evicted.

    Updates are vectorised and equal applying the regions one by one in
    order (including repeated (image, class) pairs in one call).

    Args:
        num_classes (int): L.
        feat_dim (int): D.
        momentum (float): gamma of Eq. 3 (paper: 0.99). Default: 0.99.
        capacity_per_class (int, optional): None for the adaptive size, else
            the per-class cap. Default: None.
        storage_dtype (str): ``'float32'`` or ``'float16'`` (halves the
            memory; blending is computed in float32). Default: ``'float32'``.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 *,
                 num_classes: int,
                 feat_dim: int,
                 momentum: float = 0.99,
                 capacity_per_class: Optional[int] = None,
                 storage_dtype: str = 'float32',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1 or feat_dim < 1:
            raise ValueError('RegionMemoryBank: num_classes and feat_dim must '
                             f'be >= 1, got {num_classes} and {feat_dim}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError('RegionMemoryBank: momentum must be in [0, 1), '
                             f'got {momentum}')
        if capacity_per_class is not None and capacity_per_class < 1:
            raise ValueError('RegionMemoryBank: capacity_per_class must be '
                             f'None or >= 1, got {capacity_per_class}')
        if storage_dtype not in _DTYPES:
            raise ValueError('RegionMemoryBank: storage_dtype must be one of '
                             f'{sorted(_DTYPES)}, got {storage_dtype!r}')
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.momentum = momentum
        self.capacity_per_class = capacity_per_class
        self.storage_dtype = _DTYPES[storage_dtype]
        # Gathered regions whose write waits for the next read (defer=True).
        self._staged: Optional[Tuple[Tensor, Tensor, Tensor]] = None
        self._register_empty()

    def _register_empty(self) -> None:
        long = dict(dtype=torch.long)
        self.register_buffer(
            'feats', torch.zeros(0, self.feat_dim, dtype=self.storage_dtype))
        self.register_buffer('written', torch.zeros(0, dtype=torch.bool))
        self.register_buffer('slot_class', torch.zeros(0, **long))
        self.register_buffer('slot_image', torch.zeros(0, **long))
        self.register_buffer('last_update', torch.zeros(0, **long))
        self.register_buffer('step', torch.zeros((), **long))
        self.register_buffer('class_offset',
                             torch.zeros(self.num_classes + 1, **long))
        self.register_buffer('num_images', torch.zeros((), **long))
        self.register_buffer(
            'lookup',
            torch.zeros(self.num_classes, 0, dtype=torch.int32),
            persistent=False)
        self._num_images = 0
        self._capacities = np.zeros(self.num_classes, dtype=np.int64)

    # ------------------------------------------------------------------ sizing
    @property
    def is_allocated(self) -> bool:
        """Whether the slots exist (after :meth:`allocate` or loading)."""
        return self.feats.shape[0] > 0

    @property
    def nbytes(self) -> int:
        """Bytes held by all buffers, the lookup table included."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    @property
    def capacities(self) -> Tensor:
        """Slots per class, ``(L,)``."""
        return self.class_offset[1:] - self.class_offset[:-1]

    def _layout(self, image_labels: Tensor) -> Tensor:
        if image_labels.dim() != 2 or \
                image_labels.shape[1] != self.num_classes:
            raise ValueError('RegionMemoryBank.allocate expects image_labels '
                             f'(num_images, {self.num_classes}), got '
                             f'{tuple(image_labels.shape)}')
        counts = (image_labels > 0.5).sum(0) if \
            image_labels.is_floating_point() else (image_labels != 0).sum(0)
        if self.capacity_per_class is not None:
            counts = counts.clamp_max(self.capacity_per_class)
        offset = torch.zeros(self.num_classes + 1, dtype=torch.long)
        offset[1:] = counts.long().cpu().cumsum(0)
        return offset

    @torch.no_grad()
    def allocate(self, image_labels: Tensor) -> None:
        """Size the bank from the training set's tags.

        Calling it on a bank that already has this layout (e.g. after
        resuming from a checkpoint) keeps its content.

        Args:
            image_labels (Tensor): ``(num_images, L)`` multi-hot tags; row i
                is the image with ``sample_idx`` i.

        Raises:
            ValueError: the bank already holds another layout.
        """
        offset = self._layout(image_labels)
        num_images = image_labels.shape[0]
        device = self.feats.device
        if self.is_allocated:
            if torch.equal(offset, self.class_offset.cpu()) and \
                    int(self.num_images) == num_images:
                return
            raise ValueError(
                'RegionMemoryBank.allocate: the bank already holds another '
                f'layout ({int(self.num_images)} images, '
                f'{self.feats.shape[0]} slots) than the given tags '
                f'({num_images} images, {int(offset[-1])} slots)')
        total = int(offset[-1])
        self._staged = None
        self.feats = torch.zeros(
            total, self.feat_dim, dtype=self.storage_dtype, device=device)
        self.written = torch.zeros(total, dtype=torch.bool, device=device)
        self.slot_class = torch.repeat_interleave(
            torch.arange(self.num_classes),
            offset[1:] - offset[:-1]).to(device)
        self.slot_image = torch.full((total, ),
                                     -1,
                                     dtype=torch.long,
                                     device=device)
        self.last_update = torch.full_like(self.slot_image, -1)
        self.step = torch.zeros((), dtype=torch.long, device=device)
        self.class_offset = offset.to(device)
        self.num_images = torch.tensor(num_images, device=device)
        self._rebuild_lookup()

    def _rebuild_lookup(self) -> None:
        # The sizes the update checks against, kept on the host so that a
        # step reads no buffer for them.
        self._num_images = int(self.num_images)
        self._capacities = self.capacities.cpu().numpy()
        self.lookup = torch.full((self.num_classes, self._num_images),
                                 -1,
                                 dtype=torch.int32,
                                 device=self.feats.device)
        used = (self.slot_image >= 0).nonzero()[:, 0]
        self.lookup[self.slot_class[used],
                    self.slot_image[used]] = used.to(torch.int32)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.flush()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        self._staged = None  # the loaded state replaces any pending write
        saved = state_dict.get(prefix + 'feats')
        if saved is not None:
            if saved.dim() != 2 or saved.shape[1] != self.feat_dim:
                raise ValueError(
                    f'RegionMemoryBank ({prefix}): the checkpoint holds '
                    f'entries of shape {tuple(saved.shape)}, this bank has '
                    f'feat_dim={self.feat_dim}')
            if self.is_allocated and saved.shape[0] == 0:
                # A released file (empty_bank_state) into a bank allocated
                # for training: keep the allocated, unwritten bank.
                return
            if not self.is_allocated:
                # An unallocated bank takes the checkpoint's shapes.
                for name in _PERSISTENT:
                    value = state_dict.get(prefix + name)
                    current = getattr(self, name)
                    if value is not None:
                        setattr(self, name, current.new_empty(value.shape))
            else:
                for name in _PERSISTENT:
                    value = state_dict.get(prefix + name)
                    current = getattr(self, name)
                    if value is not None and value.shape != current.shape:
                        raise ValueError(
                            f'RegionMemoryBank ({prefix}): the checkpoint\'s '
                            f'{name} has shape {tuple(value.shape)}, the '
                            f'allocated bank {tuple(current.shape)}: it was '
                            'saved for another dataset or capacity_per_class')
                if not torch.equal(state_dict[prefix + 'class_offset'].cpu(),
                                   self.class_offset.cpu()):
                    raise ValueError(
                        f'RegionMemoryBank ({prefix}): the checkpoint\'s '
                        'per-class slot ranges differ from the allocated '
                        'bank: it was saved for another dataset or '
                        'capacity_per_class')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._rebuild_lookup()

    # ---------------------------------------------------------------- access
    def entries(self) -> Tuple[Tensor, Tensor]:
        """Every slot, in place, and its class (for Eq. 4-6).

        No copy of the entries is made (at COCO's 40,000 x 4,096 a copy costs
        more than the loss, docs/performance.md). A loss that keeps them for
        its backward pass needs the step's own update to be deferred
        (``update(..., defer=True)``) until after that pass.

        Returns:
            tuple[Tensor, Tensor]: ``feats (S, D)``, the bank's own buffer in
            the storage dtype, and ``classes (S,)`` int64, -1 for slots not
            written yet.
        """
        self.flush()
        return self.feats, self.slot_class.masked_fill(~self.written, -1)

    def num_written(self) -> int:
        """Slots written so far, a deferred update included."""
        self.flush()
        return int(self.written.sum())

    def written_entries(self) -> Tuple[Tensor, Tensor]:
        """A copy of the written entries and their classes.

        Returns:
            tuple[Tensor, Tensor]: ``feats (W, D)`` in the storage dtype and
            ``classes (W,)`` int64.
        """
        self.flush()
        idx = self.written.nonzero()[:, 0]
        return self.feats[idx], self.slot_class[idx]

    def per_class_entries(self) -> Tuple[Tensor, Tensor]:
        """A padded per-class view of the entries (for k-means).

        Returns:
            tuple[Tensor, Tensor]: ``feats (L, max_slots, D)`` (storage
            dtype; padding rows are zeros) and ``mask (L, max_slots)``: the
            written entries.
        """
        self.flush()
        if not self.is_allocated:
            return (self.feats.new_zeros(self.num_classes, 1, self.feat_dim),
                    torch.zeros(
                        self.num_classes,
                        1,
                        dtype=torch.bool,
                        device=self.feats.device))
        caps = self.capacities
        col = torch.arange(int(caps.max()), device=self.feats.device)
        inside = col[None, :] < caps[:, None]
        idx = (self.class_offset[:-1, None] +
               col[None, :]).clamp_max(self.feats.shape[0] - 1)
        mask = inside & self.written[idx]
        feats = self.feats[idx] * mask[:, :, None].to(self.feats.dtype)
        return feats, mask

    # ---------------------------------------------------------------- update
    @torch.no_grad()
    def update(self,
               feats: Tensor,
               classes: Tensor,
               image_ids: Tensor,
               gate: Optional[Tensor] = None,
               defer: bool = False) -> None:
        """Write a batch of regions (Eq. 3), identically on every process.

        The regions of all processes are first gathered in rank order, so
        every process applies the same update. Regions are applied as if
        one by one in order; each applied region gets the next step number.

        With ``defer``, the regions are gathered and checked now and written
        by :meth:`flush`, which every reader of the bank (the accessors,
        ``state_dict``, the next ``update``) calls first. The result is the
        same as writing now; only the buffers change later, after the
        backward pass of a loss that read them in place (:meth:`entries`).

        Args:
            feats (Tensor): region features ``(R, D)`` (detached here).
            classes (Tensor): ``(R,)`` their classes.
            image_ids (Tensor): ``(R,)`` their images' ``sample_idx``.
            gate (Tensor, optional): ``(R,)`` bool, the regions to write
                (paper: tagged and ``sigmoid(p_l) > 0.7``). Default: all.
                A region whose feature is not finite in the storage dtype
                is never written, whatever its gate.
            defer (bool): write at the next read instead of now.
                Default: False.

        Raises:
            RuntimeError: the bank is not allocated.
            ValueError: bad shapes, classes or image ids.
        """
        if not self.is_allocated:
            raise RuntimeError(
                'RegionMemoryBank.update before allocate(): call '
                'allocate(image_labels) with the training set\'s tags first')
        self.flush()
        if gate is None:
            gate = torch.ones(
                classes.shape, dtype=torch.bool, device=classes.device)
        if feats.dim() != 2 or feats.shape[1] != self.feat_dim or not (
                feats.shape[0] == classes.numel() == image_ids.numel() ==
                gate.numel()):
            raise ValueError(
                f'RegionMemoryBank.update expects feats (R, {self.feat_dim})'
                ' and classes, image_ids, gate (R,); got '
                f'{tuple(feats.shape)}, {tuple(classes.shape)}, '
                f'{tuple(image_ids.shape)}, {tuple(gate.shape)}')
        device = self.feats.device
        feats, classes, image_ids, gate = all_gather_regions(
            feats.detach().float(), classes.long(), image_ids.long(),
            gate.bool())
        # A feature that is not finite in the storage dtype (an AMP
        # overflow) is never written: it would stay in the entry and break
        # the next k-means. Computed on the gathered regions, so every rank
        # drops the same ones, and folded into the gate.
        finite = torch.isfinite(feats.to(self.storage_dtype)).all(dim=1)
        keep_mask = (gate & finite).to(device)
        feats, classes, image_ids = (feats.to(device), classes.to(device),
                                     image_ids.to(device))
        # The update's one host read: which regions are written, their
        # classes and images (for the range checks and the runs of
        # distinct pairs, see _duplicate_free_runs), in one copy.
        meta = torch.stack([keep_mask.long(), classes,
                            image_ids]).cpu().numpy()
        keep = np.flatnonzero(meta[0])
        if keep.size == 0:
            return
        kept_classes, kept_images = meta[1, keep], meta[2, keep]
        if kept_classes.min() < 0 or kept_classes.max() >= self.num_classes:
            raise ValueError('RegionMemoryBank.update: classes must be in '
                             f'[0, {self.num_classes})')
        if kept_images.min() < 0 or kept_images.max() >= self._num_images:
            raise ValueError(
                'RegionMemoryBank.update: image ids must be sample_idx in '
                f'[0, {self._num_images}) of the dataset the bank was '
                'allocated for')
        if (self._capacities[kept_classes] == 0).any():
            raise ValueError('RegionMemoryBank.update: a class that no image '
                             'of the allocated tags has was given')
        starts = self._duplicate_free_runs(kept_classes, kept_images)
        index = torch.from_numpy(keep).to(device, non_blocking=True)
        self._staged = (feats[index], classes[index], image_ids[index], starts)
        if not defer:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Write the regions of a deferred :meth:`update` (Eq. 3), if any."""
        if self._staged is None:
            return
        feats, classes, image_ids, starts = self._staged
        self._staged = None
        times = self.step + 1 + torch.arange(
            classes.numel(), device=classes.device)
        self.step += classes.numel()
        for a, b in zip(starts[:-1], starts[1:]):
            if b > a:
                self._write_run(feats[a:b], classes[a:b], image_ids[a:b],
                                times[a:b])

    def _duplicate_free_runs(self, classes: np.ndarray,
                             image_ids: np.ndarray) -> List[int]:
        """The bounds of consecutive runs of regions with distinct (class,
        image) pairs, computed on the host.

        A run starts at every repeated occurrence of a pair, so a pair seen
        earlier is never in the same run as its repetition.

        Returns:
            list[int]: ``[0, s_1, ..., R]``, run ``k`` being
            ``[bounds[k], bounds[k + 1])``.
        """
        key = classes * self._num_images + image_ids
        order = np.argsort(key, kind='stable')
        sorted_key = key[order]
        repeat = np.zeros(key.size, dtype=bool)
        repeat[order[1:]] = sorted_key[1:] == sorted_key[:-1]
        return [0] + [int(i) for i in np.flatnonzero(repeat)] + [key.size]

    def _write_run(self, feats: Tensor, classes: Tensor, image_ids: Tensor,
                   times: Tensor) -> None:
        """Apply regions with distinct pairs as if one by one (Eq. 3).

        Misses take their class's slots in LRU order (free slots first, by
        index). This is exact unless a miss would evict a slot that is hit in
        the same run; then the run is split in halves, which are exact down
        to single regions.
        """
        slot = self.lookup[classes, image_ids].long()
        hit = slot >= 0
        miss = ~hit
        # Victim queue of every class: free slots by index, then occupied
        # slots from the least recently updated (step + 2 > any key part).
        key = self.slot_class * (self.step + 2) + self.last_update + 1
        queue = torch.sort(key, stable=True).indices
        position = torch.empty_like(queue)
        position[queue] = torch.arange(queue.numel(), device=queue.device)
        offset = self.class_offset[classes]
        # The j-th miss of a class (in order) takes its class's j-th victim.
        miss_cls = torch.where(miss, classes, classes.new_full((), -1))
        same = (miss_cls[None, :] == miss_cls[:, None]) & miss[None, :]
        rank = (same.tril(-1)).sum(dim=1)
        num_miss = torch.zeros(
            self.num_classes, dtype=torch.long, device=classes.device)
        num_miss.index_add_(0, classes, miss.long())
        # Masked over the run (no compaction): a miss beyond its class's
        # slots, or a hit whose slot a miss would evict. One host read.
        over = miss & (rank >= self.capacities[classes])
        hit_rank = position[slot.clamp_min(0)] - offset
        evicted_hit = hit & (hit_rank < num_miss[classes])
        conflict = bool((over | evicted_hit).any())
        if conflict and classes.numel() > 1:
            half = classes.numel() // 2
            self._write_run(feats[:half], classes[:half], image_ids[:half],
                            times[:half])
            self._write_run(feats[half:], classes[half:], image_ids[half:],
                            times[half:])
            return
        victim = queue[offset + rank]
        slot = torch.where(hit, slot, victim)
        old = self.feats[slot].float()
        # Eq. 3: m <- gamma m + (1 - gamma) f for resident entries; the
        # first write of an entry initialises it with f.
        blended = self.momentum * old + (1.0 - self.momentum) * feats
        new = torch.where(hit[:, None], blended, feats)
        # The lookup, without compaction: an evicted entry's pair is
        # cleared, then every region's pair points at its slot (a hit's
        # already does). No two rows of one write share a cell: the
        # evicted pairs are not in the run (that would be a conflict).
        old_image = self.slot_image[slot]
        clear = miss & (old_image >= 0)
        self.lookup[classes, torch.where(clear, old_image, image_ids)] = -1
        self.lookup[classes, image_ids] = slot.to(torch.int32)
        self.feats[slot] = new.to(self.storage_dtype)
        self.written[slot] = True
        self.slot_image[slot] = image_ids
        self.last_update[slot] = times
