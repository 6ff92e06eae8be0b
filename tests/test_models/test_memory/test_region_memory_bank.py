import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rca_mm.models.memory import RegionMemoryBank, empty_bank_state
from rca_mm.registry import MODELS

L, D = 4, 6


def _tags(num_images=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    tags = torch.rand(num_images, L, generator=g) < 0.5
    tags[torch.arange(num_images), torch.arange(num_images) % L] = True
    return tags


def _reference(bank, feats, classes, images, gate):
    """Eq. 3 applied region by region, from the documented rules."""
    state = {
        k: getattr(bank, k).clone()
        for k in ('feats', 'written', 'slot_image', 'last_update')
    }
    step = int(bank.step)
    off = bank.class_offset.tolist()
    gamma = bank.momentum
    for f, c, i, g in zip(feats, classes.tolist(), images.tolist(),
                          gate.tolist()):
        if not g:
            continue
        step += 1
        slots = list(range(off[c], off[c + 1]))
        resident = [s for s in slots if state['slot_image'][s] == i]
        if resident:
            s = resident[0]
            old = state['feats'][s].float()
            state['feats'][s] = (gamma * old + (1.0 - gamma) * f.float()).to(
                bank.storage_dtype)
        else:
            free = [s for s in slots if state['slot_image'][s] == -1]
            if free:
                s = free[0]
            else:
                s = min(slots, key=lambda t: int(state['last_update'][t]))
            state['feats'][s] = f.float().to(bank.storage_dtype)
            state['slot_image'][s] = i
        state['written'][s] = True
        state['last_update'][s] = step
    state['step'] = torch.tensor(step)
    return state


def _random_batch(g, tags, num_regions, dup_prob=0.2):
    pairs = tags.nonzero()
    pick = torch.randint(len(pairs), (num_regions, ), generator=g)
    # Repeat some pairs inside the call, as DDP sampler padding does.
    dup = torch.rand(num_regions, generator=g) < dup_prob
    src = torch.randint(num_regions, (num_regions, ), generator=g)
    pick = torch.where(dup, pick[src], pick)
    images, classes = pairs[pick, 0], pairs[pick, 1]
    feats = torch.randn(num_regions, D, generator=g)
    gate = torch.rand(num_regions, generator=g) < 0.8
    return feats, classes, images, gate


def _on(device, batch):
    """``batch``'s tensors on ``device`` (the test's ``--device``)."""
    return tuple(t.to(device) for t in batch)


def _assert_state(bank, state):
    for k in ('feats', 'written', 'slot_image', 'last_update'):
        assert torch.equal(getattr(bank, k), state[k]), k
    assert int(bank.step) == int(state['step'])


def _lookup_consistent(bank):
    for s in range(bank.feats.shape[0]):
        i = int(bank.slot_image[s])
        if i >= 0:
            assert int(bank.lookup[bank.slot_class[s], i]) == s
    assert int((bank.lookup >= 0).sum()) == int((bank.slot_image >= 0).sum())


def test_allocate_adaptive_and_capped(device):
    tags = _tags()
    bank = MODELS.build(
        dict(type='RegionMemoryBank', num_classes=L, feat_dim=D)).to(device)
    assert not bank.is_allocated
    bank.allocate(tags)
    assert bank.feats.device.type == device.type
    assert torch.equal(bank.capacities.cpu(), tags.sum(0))
    assert bank.feats.shape == (int(tags.sum()), D)
    assert not bank.written.any() and (bank.slot_image == -1).all()
    for c in range(L):
        a, b = bank.class_offset[c], bank.class_offset[c + 1]
        assert (bank.slot_class[a:b] == c).all()
    capped = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=3).to(device)
    capped.allocate(tags.float())
    assert torch.equal(capped.capacities.cpu(), tags.sum(0).clamp_max(3))
    # Same layout again keeps the bank; another layout is refused.
    capped.allocate(tags)
    with pytest.raises(ValueError, match='another layout'):
        capped.allocate(_tags(num_images=13))
    with pytest.raises(ValueError, match='image_labels'):
        RegionMemoryBank(num_classes=L, feat_dim=D).allocate(tags[:, :2])


@pytest.mark.parametrize('cap,dtype', [(None, 'float32'), (2, 'float32'),
                                       (3, 'float16'), (1, 'float32')])
def test_update_equals_sequential_reference(cap, dtype, device):
    tags = _tags()
    bank = RegionMemoryBank(
        num_classes=L,
        feat_dim=D,
        momentum=0.9,
        capacity_per_class=cap,
        storage_dtype=dtype).to(device)
    bank.allocate(tags)
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        feats, classes, images, gate = _on(device, _random_batch(g, tags, 10))
        state = _reference(bank, feats, classes, images, gate)
        bank.update(feats, classes, images, gate)
        _assert_state(bank, state)
        _lookup_consistent(bank)
    assert bank.feats.dtype == getattr(torch, dtype)
    if cap is None:
        # Adaptive: nothing is ever evicted, one slot per (image, class).
        used = bank.slot_image >= 0
        assert int(used.sum()) == int(bank.written.sum())


def test_first_write_initialises_and_momentum(device):
    tags = torch.ones(2, L, dtype=torch.bool)
    bank = RegionMemoryBank(
        num_classes=L, feat_dim=D, momentum=0.99).to(device)
    bank.allocate(tags)
    f1, f2 = torch.randn(1, D, device=device), torch.randn(1, D, device=device)
    c, i = torch.tensor([1], device=device), torch.tensor([0], device=device)
    bank.update(f1, c, i)
    entries, classes = bank.written_entries()
    assert torch.equal(entries, f1) and classes.tolist() == [1]
    bank.update(f2, c, i, torch.tensor([False], device=device))
    assert torch.equal(bank.written_entries()[0], f1)
    bank.update(f2, c, i, torch.tensor([True], device=device))
    expected = 0.99 * f1 + 0.01 * f2
    torch.testing.assert_close(bank.written_entries()[0], expected)


def test_lru_eviction_keeps_resident_images(device):
    tags = torch.zeros(4, L, dtype=torch.bool)
    tags[:, 0] = True
    bank = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=2).to(device)
    bank.allocate(tags)
    cls = torch.tensor([0], device=device)

    def put(img):
        bank.update(
            torch.full((1, D), float(img), device=device), cls,
            torch.tensor([img], device=device))

    put(0)
    put(1)
    put(0)  # image 0 refreshed: image 1 is now least recently updated
    put(2)  # evicts image 1
    assert sorted(bank.slot_image.tolist()) == [0, 2]
    put(3)  # evicts image 0 (updated at step 3, before image 2 at step 4)
    assert sorted(bank.slot_image.tolist()) == [2, 3]
    assert bank.lookup[0].tolist() == [
        -1, -1,
        bank.slot_image.tolist().index(2),
        bank.slot_image.tolist().index(3)
    ]


def test_accessors_and_nbytes(device):
    tags = _tags()
    bank = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=4).to(device)
    empty_feats, empty_mask = bank.per_class_entries()
    assert empty_feats.shape == (L, 1, D) and not empty_mask.any()
    bank.allocate(tags)
    g = torch.Generator().manual_seed(3)
    feats, classes, images, gate = _on(device,
                                       _random_batch(g, tags, 9, dup_prob=0))
    bank.update(feats, classes, images, gate)
    wf, wc = bank.written_entries()
    assert wf.shape[0] == int(bank.written.sum()) == wc.numel()
    padded, mask = bank.per_class_entries()
    assert padded.shape == (L, int(bank.capacities.max()), D)
    assert int(mask.sum()) == wf.shape[0]
    for c in range(L):
        got = padded[c][mask[c]]
        assert torch.equal(got, wf[wc == c])
    assert (padded[~mask] == 0).all()
    expected = sum(b.numel() * b.element_size() for b in bank.buffers())
    assert bank.nbytes == expected
    half = RegionMemoryBank(
        num_classes=L,
        feat_dim=D,
        capacity_per_class=4,
        storage_dtype='float16').to(device)
    half.allocate(tags)
    assert half.feats.nbytes * 2 == bank.feats.nbytes


def test_update_errors(device):
    bank = RegionMemoryBank(num_classes=L, feat_dim=D).to(device)
    f, c, i = (torch.randn(1, D,
                           device=device), torch.tensor([0], device=device),
               torch.tensor([0], device=device))
    with pytest.raises(RuntimeError, match='allocate'):
        bank.update(f, c, i)
    bank.allocate(_tags())
    with pytest.raises(ValueError, match='image ids'):
        bank.update(f, c, torch.tensor([99], device=device))
    with pytest.raises(ValueError, match='classes'):
        bank.update(f, torch.tensor([L], device=device), i)
    with pytest.raises(ValueError, match='feats'):
        bank.update(torch.randn(1, D + 1, device=device), c, i)
    with pytest.raises(ValueError, match='storage_dtype'):
        RegionMemoryBank(num_classes=L, feat_dim=D, storage_dtype='int8')


def test_state_dict_roundtrip_into_unallocated_bank(device):
    tags = _tags()
    bank = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=2).to(device)
    bank.allocate(tags)
    g = torch.Generator().manual_seed(5)
    bank.update(*_on(device, _random_batch(g, tags, 10)))
    sd = bank.state_dict()
    assert set(sd) == {
        'feats', 'written', 'slot_class', 'slot_image', 'last_update', 'step',
        'class_offset', 'num_images'
    }
    fresh = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=2).to(device)
    fresh.load_state_dict(sd)
    for k, v in sd.items():
        assert torch.equal(getattr(fresh, k), v), k
    _lookup_consistent(fresh)
    fresh.allocate(tags)  # the hook's allocate after resume keeps content
    assert torch.equal(fresh.feats, bank.feats)
    batch = _on(device, _random_batch(g, tags, 10))
    bank.update(*batch)
    fresh.update(*batch)
    for k in sd:
        assert torch.equal(getattr(fresh, k), getattr(bank, k)), k

    other = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=3).to(device)
    other.allocate(tags)
    with pytest.raises(ValueError, match='another dataset'):
        other.load_state_dict(sd)
    wrong_dim = RegionMemoryBank(num_classes=L, feat_dim=D + 1)
    with pytest.raises(ValueError, match='feat_dim'):
        wrong_dim.load_state_dict(sd)


def test_deferred_update_is_written_at_the_next_read(device):
    """update(defer=True) leaves the buffers alone until a reader (entries,
    per_class_entries, state_dict, the next update) flushes it; the result
    equals the immediate update."""
    tags = _tags()
    g = torch.Generator().manual_seed(6)
    batches = [_on(device, _random_batch(g, tags, 10)) for _ in range(3)]
    now, later = (
        RegionMemoryBank(num_classes=L, feat_dim=D,
                         capacity_per_class=2).to(device) for _ in range(2))
    now.allocate(tags)
    later.allocate(tags)
    now.update(*batches[0])
    later.update(*batches[0], defer=True)
    assert not later.written.any() and int(later.step) == 0
    feats, classes = later.entries()
    assert feats is later.feats  # in place, no copy
    assert torch.equal(classes, torch.where(now.written, now.slot_class, -1))
    assert later.num_written() == int(now.written.sum()) > 0
    _assert_state(
        later, {
            k: getattr(now, k)
            for k in ('feats', 'written', 'slot_image', 'last_update', 'step')
        })
    now.update(*batches[1])
    later.update(*batches[1], defer=True)
    # state_dict flushes: a checkpoint holds the write.
    sd = {k: v.clone() for k, v in later.state_dict().items()}
    assert torch.equal(sd['feats'], now.feats)
    now.update(*batches[2])
    later.update(*batches[2], defer=True)
    later.update(*batches[0])  # the staged write goes first
    now.update(*batches[0])
    assert torch.equal(later.feats, now.feats)
    later.update(*batches[1], defer=True)
    later.load_state_dict(sd)  # the loaded state replaces a pending write
    later.flush()
    assert torch.equal(later.feats, sd['feats'])
    with pytest.raises(ValueError, match='classes must be in'):
        later.update(
            *batches[0][:1],
            torch.full((10, ), L, device=device),
            batches[0][2],
            defer=True)  # checked when staged


def test_released_empty_bank_loads_into_fresh_and_allocated_banks(device):
    tags = _tags()
    bank = RegionMemoryBank(num_classes=L, feat_dim=D).to(device)
    bank.allocate(tags)
    bank.update(*_on(
        device, _random_batch(torch.Generator().manual_seed(1), tags, 10)))
    released = empty_bank_state({
        f'head.memory_bank.{k}': v
        for k, v in bank.state_dict().items()
    })
    released = {k[len('head.memory_bank.'):]: v for k, v in released.items()}
    assert released['feats'].shape == (0, D)
    assert int(released['step']) == 0
    fresh = RegionMemoryBank(num_classes=L, feat_dim=D).to(device)
    fresh.load_state_dict(released)  # strict: every key is there
    assert not fresh.is_allocated
    allocated = RegionMemoryBank(num_classes=L, feat_dim=D).to(device)
    allocated.allocate(tags)
    allocated.load_state_dict(released)  # fine-tuning from a release file
    assert allocated.is_allocated and not allocated.written.any()
    assert torch.equal(allocated.class_offset, bank.class_offset)


def _dist_worker(rank, world, out_dir, batches):
    # A file store: no port to race for.
    dist.init_process_group(
        'gloo',
        init_method=f'file://{out_dir}/store',
        rank=rank,
        world_size=world)
    try:
        bank = RegionMemoryBank(
            num_classes=L, feat_dim=D, capacity_per_class=2)
        bank.allocate(_tags())
        for per_rank in batches:
            bank.update(*per_rank[rank])
        torch.save(bank.state_dict(), os.path.join(out_dir, f'{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_distributed_update_identical_on_all_ranks(tmp_path):
    tags = _tags()
    g = torch.Generator().manual_seed(7)
    batches = []
    for _ in range(4):
        # Uneven region counts per rank exercise the padding.
        batches.append([_random_batch(g, tags, n) for n in (5, 3)])
    # Rank 1's regions 1 and 2 of the third step overflow (AMP): neither
    # rank writes them.
    feats, classes, images, gate = batches[2][1]
    feats[1, 0], feats[2, 3] = float('nan'), float('inf')
    batches[2][1] = (feats, classes, images, torch.ones_like(gate))
    mp.spawn(
        _dist_worker, args=(2, str(tmp_path), batches), nprocs=2, join=True)
    single = RegionMemoryBank(num_classes=L, feat_dim=D, capacity_per_class=2)
    single.allocate(tags)
    for per_rank in batches:
        single.update(*[torch.cat(t) for t in zip(*per_rank)])
    sd0 = torch.load(tmp_path / '0.pth')
    sd1 = torch.load(tmp_path / '1.pth')
    assert torch.isfinite(sd0['feats']).all()
    for k, v in single.state_dict().items():
        assert torch.equal(sd0[k], sd1[k]), k
        assert torch.equal(sd0[k], v), k
    # The update sequence is that of the finite regions alone.
    reference = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=2)
    reference.allocate(tags)
    for per_rank in batches:
        f, c, i, gt = [torch.cat(t) for t in zip(*per_rank)]
        keep = gt & torch.isfinite(f).all(1)
        state = _reference(reference, f, c, i, keep)
        reference.update(torch.where(keep[:, None], f, 0.), c, i, keep)
        _assert_state(reference, state)
    assert torch.equal(reference.feats, sd0['feats'])


def test_module_to_moves_the_bank(device):
    bank = RegionMemoryBank(num_classes=L, feat_dim=D).to('cpu')
    bank.allocate(_tags())
    bank = bank.to(device)
    bank.update(
        torch.randn(1, D, device=device), torch.tensor([0], device=device),
        torch.tensor([0], device=device))
    assert int(bank.written.sum()) == 1
    # Another device shows that every buffer follows the module, the
    # lookup table (not saved) included; 'meta' keeps shapes and dtypes.
    before = {n: (b.shape, b.dtype) for n, b in bank.named_buffers()}
    assert 'lookup' in before and before['lookup'][0] == (L, 12)
    bank.to('meta')
    after = {n: (b.shape, b.dtype) for n, b in bank.named_buffers()}
    assert after == before
    assert {b.device.type for b in bank.buffers()} == {'meta'}


def _with_non_finite(feats, storage_dtype):
    """Regions 1, 4 and 6 not finite (NaN, -inf, and for float16 storage a
    value past its range); returns the features and the finite mask."""
    feats = feats.clone()
    feats[1, 2] = float('nan')
    feats[4, 0] = float('-inf')
    bad = [1, 4]
    if storage_dtype == 'float16':
        feats[6, 3] = 1e5  # finite in float32, inf in float16
        bad.append(6)
    finite = torch.ones(feats.shape[0], dtype=torch.bool)
    finite[bad] = False
    return feats, finite


@pytest.mark.parametrize('dtype', ['float32', 'float16'])
def test_non_finite_features_are_never_written(dtype):
    from rca_mm.models.memory import batched_kmeans
    tags = _tags()
    g = torch.Generator().manual_seed(3)
    bank = RegionMemoryBank(
        num_classes=L, feat_dim=D, capacity_per_class=2, storage_dtype=dtype)
    bank.allocate(tags)
    for step in range(3):
        feats, classes, images, gate = _random_batch(g, tags, 10)
        if step == 1:
            feats, finite = _with_non_finite(feats, dtype)
            gate[[1, 4, 6]] = True  # the gate alone would write them
        else:
            finite = torch.ones_like(gate)
        expected = _reference(bank, feats, classes, images, gate & finite)
        bank.update(feats, classes, images, gate)
        _assert_state(bank, expected)
        assert torch.isfinite(bank.feats).all()
    entries, mask = bank.per_class_entries()
    centers, valid, _ = batched_kmeans(entries.float(), mask, 2, seed=0)
    assert torch.isfinite(centers).all() and valid.any()
