import pytest
import torch

from rca_mm.models.layers import PrototypeAggregation
from rca_mm.registry import MODELS


def _protos(seed=0, num_classes=3, k=4, d=5):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(num_classes, k, d, generator=g)
    valid = torch.rand(num_classes, k, generator=g) < 0.6
    valid[0, 0] = True
    return q, valid


def test_zero_before_prototypes_are_set(device):
    agg = MODELS.build(
        dict(
            type='PrototypeAggregation',
            num_classes=3,
            num_prototypes=4,
            channels=5)).to(device)
    assert not agg.has_prototypes
    feats = torch.randn(2, 5, 3, 3, device=device)
    out, weights = agg(feats, return_weights=True)
    assert torch.equal(out, torch.zeros_like(feats)) and weights is None


def test_eq7_eq8_against_per_pixel_reference(device):
    q, valid = _protos()
    agg = PrototypeAggregation(scale=0.5).to(device)
    agg.set_prototypes(q.to(device), valid.to(device))
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 5, 3, 4, generator=g).to(device).requires_grad_()
    out, s = agg(feats, return_weights=True)
    assert out.device.type == s.device.type == device.type
    feats_cpu, out_cpu, s = feats.detach().cpu(), out.detach().cpu(), s.cpu()
    assert out.shape == feats.shape and s.shape == (2, 12, 12)
    flat_q, flat_v = q.flatten(0, 1), valid.flatten()
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 12))
    assert (s[..., ~flat_v] == 0).all()
    for n in range(2):
        for y in range(3):
            for x in range(4):
                f = feats_cpu[n, :, y, x]
                logits = torch.tensor([
                    0.5 * float(f @ flat_q[p]) if flat_v[p] else -1e30
                    for p in range(12)
                ])
                w = torch.softmax(logits, 0)  # Eq. 7
                expected = (w[:, None] * flat_q).sum(0)  # Eq. 8
                torch.testing.assert_close(
                    out_cpu[n, :, y, x], expected, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert not agg.prototypes.requires_grad


def test_prototypes_saved_and_restored_whatever_the_shape(device):
    q, valid = _protos()
    agg = PrototypeAggregation().to(device)
    agg.set_prototypes(q, valid)
    sd = agg.state_dict()
    assert set(sd) == {'prototypes', 'prototype_valid'}
    for fresh in (PrototypeAggregation().to(device),
                  PrototypeAggregation(
                      num_classes=2, num_prototypes=10,
                      channels=7).to(device)):
        fresh.load_state_dict(sd)
        assert torch.equal(fresh.prototypes.cpu(), q)
        assert torch.equal(fresh.prototype_valid.cpu(), valid)
        feats = torch.randn(1, 5, 2, 2, device=device)
        assert torch.equal(fresh(feats), agg(feats))


def test_bad_input(device):
    agg = PrototypeAggregation().to(device)
    with pytest.raises(ValueError, match='valid'):
        agg.set_prototypes(torch.randn(3, 4, 5), torch.ones(3, 5).bool())
    agg.set_prototypes(*_protos())
    with pytest.raises(ValueError, match='channels'):
        agg(torch.randn(1, 6, 2, 2, device=device))
    with pytest.raises(ValueError, match='scale'):
        PrototypeAggregation(scale=0)


def test_k_and_the_kmeans_are_its_own_settings(device):
    from rca_mm.models.memory import batched_kmeans
    agg = PrototypeAggregation(
        num_classes=2,
        num_prototypes=2,
        channels=3,
        num_iters=7,
        num_init=2,
        seed=5).to(device)
    assert agg.prototypes.shape == (2, 2, 3)  # sized by K at build
    g = torch.Generator().manual_seed(0)
    entries = torch.randn(2, 4, 3, generator=g).to(device)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]],
                        dtype=torch.bool,
                        device=device)
    assert agg.cluster(entries, mask, epoch=3) == 2
    centers, valid, _ = batched_kmeans(
        entries, mask, 2, num_iters=7, n_init=2, seed=8)
    assert torch.equal(agg.prototypes, centers)
    assert torch.equal(agg.prototype_valid, valid)
    # K = None: every written entry of the fullest class is a prototype.
    every = PrototypeAggregation(
        num_classes=2, num_prototypes=None, channels=3).to(device)
    assert every.prototypes.shape == (2, 0, 3)
    assert every.cluster(entries, mask, epoch=1) == 3
    assert every.prototype_valid.sum() == 5
    with pytest.raises(ValueError, match='num_prototypes'):
        PrototypeAggregation(num_prototypes=0)


def _scaled_case(d, rms, num_classes=3, k=4, seed=0):
    """Prototypes and features at a feature RMS ``rms``: every pixel near
    one prototype (k-means centres of features), so ``F Q^T`` is about
    ``d * rms ** 2``."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(num_classes, k, d, generator=g) * rms
    valid = torch.ones(num_classes, k, dtype=torch.bool)
    valid[1, 3] = False
    pick = torch.randint(num_classes * k, (2 * 3 * 3, ), generator=g)
    pixels = q.flatten(0, 1)[pick] + 0.5 * rms * torch.randn(
        pick.numel(), d, generator=g)
    feats = pixels.reshape(2, 3, 3, d).permute(0, 3, 1, 2).contiguous()
    return q, valid, feats


@pytest.mark.parametrize('d, rms', [(4096, 6.0), (512, 16.0)])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_eq7_in_float32_under_autocast(d, rms, dtype):
    # F Q^T is about 147,000 and 131,000 here: past float16's 65,504.
    q, valid, feats = _scaled_case(d, rms)
    agg = PrototypeAggregation()
    agg.set_prototypes(q, valid)
    expected, expected_s = agg(feats, return_weights=True)
    assert torch.isfinite(expected).all()
    feats = feats.clone().requires_grad_(True)
    with torch.autocast('cpu', dtype=dtype):
        out, s = agg(feats, return_weights=True)
    assert out.dtype == torch.float32 and s.dtype == torch.float32
    assert torch.isfinite(out).all() and torch.isfinite(s).all()
    torch.testing.assert_close(s, expected_s, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    out.sum().backward()
    assert torch.isfinite(feats.grad).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_features_come_back_in_their_dtype(dtype):
    # Features made by a half-precision backbone: F' in their dtype, S in
    # float32, both as in float32 up to the rounding of F'.
    q, valid, feats = _scaled_case(512, 16.0)
    agg = PrototypeAggregation()
    agg.set_prototypes(q, valid)
    half = feats.to(dtype)
    expected, expected_s = agg(half.float(), return_weights=True)
    with torch.autocast('cpu', dtype=dtype):
        out, s = agg(half, return_weights=True)
    assert out.dtype == dtype and s.dtype == torch.float32
    torch.testing.assert_close(s, expected_s, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, expected.to(dtype))


def _cluster_worker(rank, world, out_dir, entries, mask):
    import torch.distributed as dist

    from rca_mm.models.layers import prototype_aggregation as module
    dist.init_process_group(
        'gloo',
        init_method=f'file://{out_dir}/store',
        rank=rank,
        world_size=world)
    calls = []
    kmeans = module.batched_kmeans

    def counted(*args, **kwargs):
        calls.append(1)
        return kmeans(*args, **kwargs)

    module.batched_kmeans = counted
    try:
        agg = PrototypeAggregation(num_prototypes=2, num_iters=5, num_init=2)
        agg.cluster(entries, mask, epoch=1)
        torch.save(
            dict(
                calls=len(calls),
                prototypes=agg.prototypes,
                valid=agg.prototype_valid), f'{out_dir}/{rank}.pth')
    finally:
        dist.destroy_process_group()


def test_only_rank0_clusters_and_every_rank_gets_its_centres(tmp_path):
    import torch.multiprocessing as mp
    g = torch.Generator().manual_seed(4)
    entries = torch.randn(3, 6, 5, generator=g)
    mask = torch.rand(3, 6, generator=g) < 0.7
    mask[:, :2] = True
    mp.spawn(
        _cluster_worker,
        args=(2, str(tmp_path), entries, mask),
        nprocs=2,
        join=True)
    single = PrototypeAggregation(num_prototypes=2, num_iters=5, num_init=2)
    single.cluster(entries, mask, epoch=1)
    out = [torch.load(tmp_path / f'{r}.pth') for r in range(2)]
    assert [o['calls'] for o in out] == [1, 0]
    for o in out:
        assert torch.equal(o['prototypes'], single.prototypes)
        assert torch.equal(o['valid'], single.prototype_valid)
