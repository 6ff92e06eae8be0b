"""Host synchronisations of one RCA training step, counted on the CPU.

On a GPU every read of a device value by the host (``.item()``,
``int(t)``, ``bool(t)``, ``.tolist()``, ``.cpu()``), every ``nonzero`` and
every boolean-mask index (whose output size the host must learn) waits for
the device. The CPU has no such wait, so these calls are counted instead
(``.cpu()`` too, a CPU tensor's included: on a GPU it is the host's read;
what the host then does with the copy in NumPy is not counted):
the Python entry points are wrapped for one head forward + loss + bank
write at fixed inputs, and the count is held at the figure documented in
docs/performance.md ("Host synchronisation in the RCA step"), so a change
that adds one to the step fails here.
"""
import contextlib
from collections import Counter

import pytest
import torch
from mmseg.structures import SegDataSample

from rca_mm.models.memory import batched_kmeans
from rca_mm.registry import MODELS

L, D, N = 4, 8, 4
TAGS = torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1],
                     [1, 0, 1, 0], [0, 1, 0, 1]],
                    dtype=torch.bool)
# The step's documented host synchronisations (docs/performance.md): the
# tags of Eq. 2 (the number of regions), the bank update's gate and range
# check, and one eviction-conflict check per written run of Eq. 3 (one run
# in a step without conflicts; a conflict splits a run in halves, each
# checked again).
SYNCS_BEFORE_WRITE = 2


def _is_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index, )
    return any(
        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


@contextlib.contextmanager
def count_host_syncs():
    """Count the calls that synchronise with the device on a GPU.

    Yields:
        Counter: calls by name, filled while the context is open.
    """
    calls = Counter()
    tensor = torch.Tensor
    originals = {
        name: getattr(tensor, name)
        for name in ('item', '__bool__', '__int__', '__float__', '__index__',
                     'tolist', 'nonzero', 'cpu', '__getitem__')
    }
    original_nonzero = torch.nonzero
    original_where = torch.where

    def wrap(name):
        original = originals[name]

        def counted(self, *args, **kwargs):
            if name == '__getitem__':
                if _is_mask(args[0]):
                    calls['mask index'] += 1
            else:
                calls[name] += 1
            return original(self, *args, **kwargs)

        return counted

    def nonzero(*args, **kwargs):
        calls['nonzero'] += 1
        return original_nonzero(*args, **kwargs)

    def where(*args, **kwargs):
        if len(args) + len(kwargs) == 1:
            calls['where(cond)'] += 1
        return original_where(*args, **kwargs)

    try:
        for name in originals:
            setattr(tensor, name, wrap(name))
        torch.nonzero = nonzero
        torch.where = where
        yield calls
    finally:
        for name, original in originals.items():
            setattr(tensor, name, original)
        torch.nonzero = original_nonzero
        torch.where = original_where


def _samples(batch):
    out = []
    for idx in batch:
        s = SegDataSample(metainfo=dict(sample_idx=idx, img_path=f'{idx}'))
        s.gt_img_labels = TAGS[idx].float()
        out.append(s)
    return out


def _trained_head(**kwargs):
    """A head whose bank holds entries and whose prototypes are set, as in
    any step after the first epoch."""
    torch.manual_seed(0)
    head = MODELS.build(
        dict(
            type='RCAHead',
            in_channels=D,
            num_classes=L,
            gate_threshold=0.0,
            aggregation=dict(type='PrototypeAggregation', num_prototypes=2),
            **kwargs))
    head.init_weights()
    head.memory_bank.allocate(TAGS)
    for batch in ([0, 1, 2], [3, 4, 5]):
        head.loss(torch.randn(3, D, 6, 6), _samples(batch))
    entries, mask = head.memory_bank.per_class_entries()
    centers, valid, _ = batched_kmeans(entries, mask, 2, num_iters=3)
    head.aggregation.set_prototypes(centers, valid)
    head.memory_bank.flush()
    return head


@pytest.mark.parametrize('capacity', [None, 2])
def test_one_step_holds_the_documented_syncs(capacity):
    head = _trained_head(
        memory_bank=dict(type='RegionMemoryBank', capacity_per_class=capacity))
    bank = head.memory_bank
    runs = []
    write_run = bank._write_run

    def counted_run(*args):
        runs.append(args[1].numel())
        return write_run(*args)

    bank._write_run = counted_run
    feats = torch.randn(N, D, 6, 6, requires_grad=True)
    samples = _samples([5, 0, 2, 4])
    with count_host_syncs() as calls:
        losses = head.loss(feats, samples)
        sum(losses.values()).backward()
        bank.flush()  # the deferred write of Eq. 3
    assert losses['loss_rsc'] > 0
    assert head.aggregation.has_prototypes
    regions = int(TAGS[[5, 0, 2, 4]].sum())
    if capacity is None:
        assert runs == [regions]  # one run: the adaptive bank never evicts
    else:
        # A full class: the run was split into halves (each a call).
        assert runs[0] == regions and len(runs) > 1
    assert sum(calls.values()) == SYNCS_BEFORE_WRITE + len(runs), dict(calls)


def test_the_counter_sees_each_kind_of_sync():
    x = torch.arange(6.0)
    with count_host_syncs() as calls:
        x.sum().item()
        bool(x.any())
        int(x[0])
        x[x > 2]
        x.nonzero()
        torch.nonzero(x)
        torch.where(x > 1)
        torch.where(x > 1, x, 0)  # three arguments: no sync
        x.tolist()
        x[1:3]  # a view: no sync
    assert calls == Counter({
        'item': 1,
        '__bool__': 1,
        '__int__': 1,
        'mask index': 1,
        'nonzero': 2,
        'where(cond)': 1,
        'tolist': 1
    })
