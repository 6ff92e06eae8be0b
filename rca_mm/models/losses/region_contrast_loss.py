"""Regional semantic contrast (Eq. 4) with region mixup (Eq. 5-6).

.. code:: text

    f (R, D) --partner l-, w ~ Beta(b, b)--> f^ = w f + (1-w) f_l-    Eq. 5
    f^ . bank^T / (|f^| |bank|) / tau ----> A (R, S)
    A --logsumexp over negatives,
        mean over positives --------------> L_NCE(f^, l)              Eq. 4
    w L_NCE(f^, l) + (1-w) L_NCE(f^, l-) --> L_RM                     Eq. 6

The bank (memory entries, detached; entries of class -1 are ignored, so the
bank's buffer can be passed in place) is only read: the similarity is
one ``(R, S)`` matrix product computed in chunks of ``chunk_size`` bank rows
by an autograd function that keeps the bank in its storage dtype (a float16
bank is never copied to float32 as a whole, also not for the backward).

With several processes the regions of the whole batch take part, as in one
process (Eq. 5 mixes within the batch):

.. code:: text

    f, l, image of this rank's regions
      --all_gather (rank order; f with gradient)--> the batch's regions
    partners, w drawn on rank 0 --broadcast--> the same on every rank
    L_RM over the batch's regions, identical on every rank

The gather's backward sums each rank's gradient of the gathered features,
so every rank's regions receive the gradient of all ranks' identical
losses, ``world_size`` times that of the loss; DDP's average over ranks
then gives the parameters the gradient of one process holding the whole
batch.
"""
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rca_mm.registry import MODELS


class _ChunkedBankProduct(torch.autograd.Function):
    """``q @ bank.T`` over chunks of bank rows; gradient into ``q`` only."""

    @staticmethod
    def forward(ctx, q: Tensor, bank: Tensor, chunk_size: int) -> Tensor:
        ctx.save_for_backward(bank)
        ctx.chunk_size = chunk_size
        out = q.new_empty((q.shape[0], bank.shape[0]))
        for start in range(0, bank.shape[0], chunk_size):
            chunk = bank[start:start + chunk_size].to(q.dtype)
            out[:, start:start + chunk_size] = q @ chunk.t()
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        bank, = ctx.saved_tensors
        grad_q = grad_out.new_zeros((grad_out.shape[0], bank.shape[1]))
        for start in range(0, bank.shape[0], ctx.chunk_size):
            chunk = bank[start:start + ctx.chunk_size].to(grad_out.dtype)
            grad_q += grad_out[:, start:start + ctx.chunk_size] @ chunk
        return grad_q, None, None


class _AllGatherWithGrad(torch.autograd.Function):
    """``all_gather`` of equally shaped tensors into ``(world, ...)``; the
    backward sums the gathered tensor's gradient over ranks and returns
    this rank's part (any backend: one ``all_reduce``)."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        ctx.rank = dist.get_rank()
        parts = [
            torch.empty_like(tensor) for _ in range(dist.get_world_size())
        ]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank]


def _distributed_world() -> int:
    """The number of processes, 1 without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_batch_regions(
        region_feats: Tensor, region_classes: Tensor,
        region_images: Tensor) -> Tuple[Tensor, Tensor, Tensor, List[int]]:
    """The regions of every process, concatenated in rank order.

    The features keep their gradient (see the module docstring); each rank
    pads its regions to the largest count for the collectives, and the
    padding is dropped. Every rank must call this.

    Args:
        region_feats (Tensor): ``(R, D)`` this rank's regions.
        region_classes (Tensor): ``(R,)``.
        region_images (Tensor): ``(R,)`` image ids, distinct across ranks
            (the dataset's ``sample_idx``).

    Returns:
        tuple: the batch's ``feats (R_all, D)``, ``classes (R_all,)``,
        ``images (R_all,)`` and the region count of each rank.
    """
    world, device = dist.get_world_size(), region_feats.device
    count = torch.tensor([region_feats.shape[0]], device=device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = torch.cat(counts).tolist()  # one host read per step
    pad, r = max(counts), region_feats.shape[0]
    feats = torch.cat([
        region_feats,
        region_feats.new_zeros((pad - r, region_feats.shape[1]))
    ])
    meta = torch.stack([region_classes.long(), region_images.long()], dim=1)
    meta = torch.cat([meta, meta.new_zeros((pad - r, 2))])
    all_feats = _AllGatherWithGrad.apply(feats)
    all_meta = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(all_meta, meta)
    feats = torch.cat([all_feats[k, :c] for k, c in enumerate(counts)])
    meta = torch.cat([m[:c] for m, c in zip(all_meta, counts)])
    return (feats, meta[:, 0].to(region_classes.dtype),
            meta[:, 1].to(region_images.dtype), counts)


def bank_cosine_logits(queries: Tensor,
                       bank_feats: Tensor,
                       temperature: float,
                       chunk_size: int = 8192) -> Tensor:
    """``sim(q, m) / tau`` for every query and bank entry (cosine similarity).

    Args:
        queries (Tensor): ``(Q, D)``; receives the gradient.
        bank_feats (Tensor): ``(S, D)`` in any float dtype; detached.
        temperature (float): tau.
        chunk_size (int): bank rows per matrix product.

    Returns:
        Tensor: ``(Q, S)`` logits in the dtype of ``queries``.
    """
    bank = bank_feats.detach()
    q = F.normalize(queries, dim=1)
    inv_norm = torch.cat([
        bank[s:s + chunk_size].to(q.dtype).norm(dim=1)
        for s in range(0, bank.shape[0], chunk_size)
    ]).clamp_min(1e-12).reciprocal() if bank.shape[0] else q.new_zeros(0)
    logits = _ChunkedBankProduct.apply(q, bank, chunk_size)
    return logits * (inv_norm / temperature)


def nce_per_query(logits: Tensor, query_classes: Tensor,
                  bank_classes: Tensor) -> Tuple[Tensor, Tensor]:
    """Eq. 4 for each query row of ``logits`` and its class.

    ``L_NCE(f, l) = mean_{m+ in M_l} -log(e^{a+} / (e^{a+} + sum_{m-} e^{a-}))
    = mean_{m+} softplus(logsumexp_{m-}(a-) - a+)`` with ``a = sim / tau``;
    positives are the entries of class l, negatives those of other classes;
    entries of class -1 (slots not written yet) are neither.

    Args:
        logits (Tensor): ``(Q, S)`` similarities over temperature.
        query_classes (Tensor): ``(Q,)`` the class l of each query.
        bank_classes (Tensor): ``(S,)`` the class of each entry, -1 for none.

    Returns:
        tuple[Tensor, Tensor]: the loss ``(Q,)`` (0 where undefined) and
        ``valid (Q,)``: the class has at least one positive and one negative.
    """
    pos = bank_classes[None, :] == query_classes[:, None]
    neg = (bank_classes[None, :] >= 0) & ~pos
    num_pos = pos.sum(dim=1)
    valid = (num_pos > 0) & neg.any(dim=1)
    neg_lse = logits.masked_fill(~neg, float('-inf')).logsumexp(dim=1)
    neg_lse = torch.where(valid, neg_lse, torch.zeros_like(neg_lse))
    # Eq. 4: -log(e^{a+} / (e^{a+} + sum e^{a-})) for every positive a+.
    per_pos = F.softplus(neg_lse[:, None] - logits)
    per_pos = torch.where(pos, per_pos, torch.zeros_like(per_pos))
    loss = per_pos.sum(dim=1) / num_pos.clamp_min(1).to(per_pos.dtype)
    return torch.where(valid, loss, torch.zeros_like(loss)), valid


@MODELS.register_module()
class RegionContrastLoss(nn.Module):
    """Regional semantic contrast (RSC, Eq. 4) with region mixup (Eq. 5-6).

    Each pseudo-region feature ``f_l`` (Eq. 2) is contrasted with the
    written memory entries: positives are the entries of its class, negatives
    the entries of all other classes, cosine similarity over ``temperature``
    (Eq. 4). With ``use_mixup``, every region ``l`` of image I is mixed with
    a partner region ``l-`` of a different class from another image of the
    batch (of every process: see :func:`gather_batch_regions`), drawn
    uniformly among those, ``f^ = w f_l + (1 - w) f_{l-}`` with
    ``w ~ Beta(mixup_beta, mixup_beta)`` (Eq. 5), and the loss is
    ``w L_NCE(f^, l) + (1 - w) L_NCE(f^, l-)`` (Eq. 6).

    Defined cases the paper leaves open:

    - no partner (every other region of the batch is of the same class or
      of the same image, or the batch has one image): the region uses the
      unmixed ``L_NCE(f_l, l)``;
    - a class with no written positive, or a bank with no negative: that
      ``L_NCE`` term is skipped; under mixup the other term still counts
      with its weight (``1 - w`` or ``w``, not renormalised). A bank with
      no negative for a class holds that class only, so every term Eq. 4
      defines is 0 and skipping those terms instead of counting them gives
      the same loss, 0;
    - reduction ``'mean'`` averages over the regions that have at least one
      term, ``'sum'`` sums them; with no term at all the loss is
      ``0 * sum(region_feats)``, which keeps the graph connected.

    With several processes the loss is that of the whole batch on every
    rank: the regions of all ranks are gathered, the partners and weights
    are drawn on rank 0 and broadcast, and the gradient reaches each
    region through the gather, so that after DDP's average the step is
    that of one process holding the batch.

    Args:
        temperature (float): tau of Eq. 4. The paper gives no value; the
            released code uses 0.07. Default: 0.07.
        mixup_beta (float): beta of ``Beta(beta, beta)`` (paper: 8).
            Default: 8.0.
        use_mixup (bool): apply region mixup (Eq. 5-6); False gives Eq. 4
            alone. Default: True.
        loss_weight (float): multiplier of the loss. Default: 1.0.
        reduction (str): ``'mean'`` or ``'sum'`` over regions.
            Default: ``'mean'``.
        chunk_size (int): bank rows per similarity matrix product.
            Default: 8192.
        loss_name (str): key of the loss in the head's loss dict.
            Default: ``'loss_rsc'``.
    """

    def __init__(self,
                 *,
                 temperature: float = 0.07,
                 mixup_beta: float = 8.0,
                 use_mixup: bool = True,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 chunk_size: int = 8192,
                 loss_name: str = 'loss_rsc') -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'RegionContrastLoss: temperature must be > 0, '
                             f'got {temperature}')
        if mixup_beta <= 0:
            raise ValueError(f'RegionContrastLoss: mixup_beta must be > 0, '
                             f'got {mixup_beta}')
        if reduction not in ('mean', 'sum'):
            raise ValueError("RegionContrastLoss: reduction must be 'mean' or "
                             f"'sum', got {reduction!r}")
        if chunk_size < 1:
            raise ValueError(f'RegionContrastLoss: chunk_size must be >= 1, '
                             f'got {chunk_size}')
        self.temperature = temperature
        self.mixup_beta = mixup_beta
        self.use_mixup = use_mixup
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.chunk_size = chunk_size
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """The key of this loss in a loss dict."""
        return self._loss_name

    def sample_mixup(
            self,
            region_classes: Tensor,
            region_images: Tensor,
            generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, Tensor]:
        """Draw each region's mixup partner and weight (Eq. 5).

        Partners are drawn uniformly among the regions of another image and
        another class (argmax of uniform noise over the allowed pairs);
        ``w ~ Beta(beta, beta)``. Regions with no allowed partner get
        themselves as partner and ``w = 1``, i.e. no mixing.

        Args:
            region_classes (Tensor): ``(R,)``.
            region_images (Tensor): ``(R,)`` the image of each region.
            generator (torch.Generator, optional): random source on the
                device of the inputs, for reproducible draws. The weights
                come from ``torch._sample_dirichlet`` (the sampler behind
                ``torch.distributions.Beta``), the public API having no
                generator argument.

        Returns:
            tuple[Tensor, Tensor]: ``partner (R,)`` int64 indices into the
            regions and ``omega (R,)`` float32.
        """
        r = region_classes.numel()
        device = region_classes.device
        allowed = ((region_images[None, :] != region_images[:, None]) &
                   (region_classes[None, :] != region_classes[:, None]))
        noise = torch.rand((r, r), generator=generator, device=device)
        noise = noise.masked_fill(~allowed, -1.0)
        has_partner = allowed.any(dim=1)
        partner = torch.where(has_partner, noise.argmax(dim=1),
                              torch.arange(r, device=device))
        conc = torch.full((r, 2), float(self.mixup_beta), device=device)
        # w ~ Beta(beta, beta) as the first coordinate of a Dirichlet draw
        # (the sampler torch.distributions.Beta uses, with a generator).
        omega = torch._sample_dirichlet(conc, generator=generator)[:, 0]
        omega = torch.where(has_partner, omega, torch.ones_like(omega))
        return partner, omega

    def mixup_loss(self, region_feats: Tensor, region_classes: Tensor,
                   partner: Tensor, omega: Tensor, bank_feats: Tensor,
                   bank_classes: Tensor) -> Tensor:
        """Eq. 5-6 for given partners and weights, reduced and weighted.

        With ``partner = arange(R)`` and ``omega = 1`` this is Eq. 4 alone.

        Args:
            region_feats (Tensor): ``(R, D)``.
            region_classes (Tensor): ``(R,)``.
            partner (Tensor): ``(R,)`` index of each region's partner.
            omega (Tensor): ``(R,)`` mixing weights in [0, 1].
            bank_feats (Tensor): ``(S, D)`` memory entries.
            bank_classes (Tensor): ``(S,)`` their classes, -1 to ignore one.

        Returns:
            Tensor: the scalar loss.
        """
        omega = omega.to(region_feats.dtype)
        w = omega[:, None]
        mixed = w * region_feats + (1 - w) * region_feats[partner]  # Eq. 5
        logits = bank_cosine_logits(mixed, bank_feats, self.temperature,
                                    self.chunk_size)
        bank_classes = bank_classes.to(region_classes.device)
        own, own_valid = nce_per_query(logits, region_classes, bank_classes)
        other, other_valid = nce_per_query(logits, region_classes[partner],
                                           bank_classes)
        # A region without partner (partner = itself, w = 1) has one term.
        other_valid = other_valid & (
            partner != torch.arange(partner.numel(), device=partner.device))
        # Eq. 6: L_RM = w L_NCE(f^, l) + (1 - w) L_NCE(f^, l-); invalid
        # terms are 0 (see nce_per_query).
        per_region = omega * own + (1 - omega) * other * other_valid
        has_term = own_valid | other_valid
        # A masked sum over fixed shapes (no host read of which regions
        # have a term): a region without one adds an exact 0, and with no
        # term at all the loss is 0 (divided by 1), the graph connected.
        loss = torch.where(has_term, per_region,
                           torch.zeros_like(per_region)).sum()
        if self.reduction == 'mean':
            loss = loss / has_term.sum().clamp_min(1)
        return self.loss_weight * loss

    def forward(self,
                region_feats: Tensor,
                region_classes: Tensor,
                region_images: Tensor,
                bank_feats: Tensor,
                bank_classes: Tensor,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """The RSC loss of a batch of regions against the memory.

        Args:
            region_feats (Tensor): pseudo-region features ``(R, D)`` (Eq. 2).
            region_classes (Tensor): ``(R,)`` class of each region.
            region_images (Tensor): ``(R,)`` image of each region (any ids
                that tell images apart, e.g. the index in the batch).
            bank_feats (Tensor): memory entries ``(S, D)``, any float
                dtype, e.g. ``RegionMemoryBank.entries()``; no gradient flows
                into them.
            bank_classes (Tensor): ``(S,)`` their classes; -1 marks an entry
                to ignore (a slot not written yet).
            generator (torch.Generator, optional): random source of the
                mixup draws.

        Returns:
            Tensor: the scalar loss (times ``loss_weight``).
        """
        if region_feats.dim() != 2 or bank_feats.dim() != 2 or (
                region_feats.shape[1] != bank_feats.shape[1]
                and bank_feats.shape[0] > 0):
            raise ValueError(
                'RegionContrastLoss expects region_feats (R, D) and '
                f'bank_feats (S, D); got {tuple(region_feats.shape)} and '
                f'{tuple(bank_feats.shape)}')
        # The bank is the same on every rank: all return here, or none.
        if bank_feats.shape[0] == 0:
            return region_feats.sum() * 0
        local_feats = region_feats
        distributed = _distributed_world() > 1
        if distributed:
            region_feats, region_classes, region_images, _ = \
                gather_batch_regions(region_feats, region_classes,
                                     region_images)
        if region_feats.shape[0] == 0:
            return local_feats.sum() * 0
        r = region_feats.shape[0]
        if self.use_mixup:
            partner, omega = self._shared_mixup(region_classes, region_images,
                                                generator, distributed)
        else:
            partner = torch.arange(r, device=region_feats.device)
            omega = region_feats.new_ones(r)
        return self.mixup_loss(region_feats, region_classes, partner, omega,
                               bank_feats, bank_classes)

    def _shared_mixup(self, region_classes: Tensor, region_images: Tensor,
                      generator: Optional[torch.Generator],
                      distributed: bool) -> Tuple[Tensor, Tensor]:
        """:meth:`sample_mixup`, drawn on rank 0 and broadcast when
        ``distributed``: the same partners and weights on every rank,
        whatever each rank's random state."""
        if not distributed:
            return self.sample_mixup(region_classes, region_images, generator)
        r, device = region_classes.numel(), region_classes.device
        if dist.get_rank() == 0:
            partner, omega = self.sample_mixup(region_classes, region_images,
                                               generator)
        else:
            partner = torch.empty(r, dtype=torch.long, device=device)
            omega = torch.empty(r, dtype=torch.float32, device=device)
        dist.broadcast(partner, src=0)
        dist.broadcast(omega, src=0)
        return partner, omega
