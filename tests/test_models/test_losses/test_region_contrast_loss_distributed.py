"""Region mixup over the whole batch with several processes: a 2-process
gloo run (2 images per rank, DDP) gives the loss and the parameter
gradient of one process holding the 4 images, with the same partners and
weights, whatever each rank's random state."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rca_mm.models.losses import RegionContrastLoss
from rca_mm.models.losses.region_contrast_loss import gather_batch_regions

# 4 images, 2 per rank; rank 0 holds 3 regions, rank 1 holds 5 (padding).
IMAGES = torch.tensor([0, 0, 1, 2, 2, 2, 3, 3])
CLASSES = torch.tensor([0, 1, 2, 0, 1, 3, 2, 3])
RANK_REGIONS = (slice(0, 3), slice(3, 8))
SEEDS = (1000, 2000)  # each rank's own random state (diff_rank_seed)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(IMAGES), 5, generator=g, dtype=torch.float64)
    weight = torch.randn(8, 5, generator=g, dtype=torch.float64)
    bank = torch.randn(30, 8, generator=g, dtype=torch.float64)
    bank_cls = torch.arange(30) % 4
    bank_cls[-3:] = -1  # slots not written yet
    return x, weight, bank, bank_cls


def _step(loss_fn,
          x,
          weight,
          images,
          classes,
          bank,
          bank_cls,
          ddp=False,
          seed=None):
    """One forward/backward of a linear 'backbone' and the loss (the
    random state seeded with ``seed`` just before it); returns the loss,
    the weight's gradient and the regions' gradient."""
    layer = nn.Linear(5, 8, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(weight)
    model = DistributedDataParallel(layer) if ddp else layer
    feats = model(x)
    feats.retain_grad()
    if seed is not None:
        torch.manual_seed(seed)
    loss = loss_fn(feats, classes, images, bank, bank_cls)
    loss.backward()
    return loss.detach(), layer.weight.grad.clone(), feats.grad.clone()


def _worker(rank, tmp):
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp}/store', rank=rank, world_size=2)
    x, weight, bank, bank_cls = _data()
    part = RANK_REGIONS[rank]
    out = {}
    for name, mixup in (('mixup', True), ('eq4', False)):
        loss_fn = RegionContrastLoss(use_mixup=mixup, chunk_size=7)
        out[name] = _step(
            loss_fn,
            x[part],
            weight,
            IMAGES[part],
            CLASSES[part],
            bank,
            bank_cls,
            ddp=True,
            seed=SEEDS[rank])
    feats, classes, images, counts = gather_batch_regions(
        x[part] @ weight.t(), CLASSES[part], IMAGES[part])
    out['gathered'] = (feats, classes, images, counts)
    torch.save(out, f'{tmp}/rank{rank}.pt')
    dist.destroy_process_group()


def test_two_processes_give_the_one_process_loss_of_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path), ), nprocs=2, join=True)
    ranks = [
        torch.load(tmp_path / f'rank{r}.pt', weights_only=False)
        for r in (0, 1)
    ]
    x, weight, bank, bank_cls = _data()
    # The gather: the batch's regions in rank order, padding dropped.
    for rank in ranks:
        feats, classes, images, counts = rank['gathered']
        assert counts == [3, 5]
        torch.testing.assert_close(feats, x @ weight.t())
        assert torch.equal(classes, CLASSES) and torch.equal(images, IMAGES)
    # The reference: one process, the 4 images, the partners and weights
    # rank 0 drew from its own random state.
    loss_fn = RegionContrastLoss(chunk_size=7)
    torch.manual_seed(SEEDS[0])
    partner, omega = loss_fn.sample_mixup(CLASSES, IMAGES)
    crossing = [(i, int(p)) for i, p in enumerate(partner)
                if (i < 3) != (int(p) < 3)]
    assert crossing, 'some partners come from the other rank'
    assert bool((omega != 1).all())  # every region has a partner

    def fixed_mixup(feats, classes, images, bank_feats, bank_classes):
        return loss_fn.mixup_loss(feats, classes, partner, omega, bank_feats,
                                  bank_classes)

    ref = {
        'mixup': _step(fixed_mixup, x, weight, IMAGES, CLASSES, bank, bank_cls)
    }
    eq4 = RegionContrastLoss(use_mixup=False, chunk_size=7)
    ref['eq4'] = _step(eq4, x, weight, IMAGES, CLASSES, bank, bank_cls)
    for name in ('mixup', 'eq4'):
        ref_loss, ref_grad, ref_feats_grad = ref[name]
        for r, rank in enumerate(ranks):
            loss, grad, feats_grad = rank[name]
            # Every rank reports the batch's loss: the 1-process value.
            torch.testing.assert_close(
                loss, ref_loss, rtol=1e-12, atol=1e-12, msg=name)
            # After DDP's average: the 1-process parameter gradient.
            torch.testing.assert_close(
                grad, ref_grad, rtol=1e-10, atol=1e-12, msg=name)
            # Each rank's regions: their share of the batch's gradient,
            # times the 2 ranks that DDP's average divides by.
            torch.testing.assert_close(
                feats_grad,
                2 * ref_feats_grad[RANK_REGIONS[r]],
                rtol=1e-10,
                atol=1e-12,
                msg=name)
        assert torch.equal(ranks[0][name][0], ranks[1][name][0])


def _local_only_loss():
    """What each rank computed before the batch was gathered: its own
    regions, partners among its own 2 images."""
    x, weight, bank, bank_cls = _data()
    loss_fn = RegionContrastLoss(use_mixup=False)
    return [
        float(
            loss_fn(x[p] @ weight.t(), CLASSES[p], IMAGES[p], bank, bank_cls))
        for p in RANK_REGIONS
    ]


def test_the_per_rank_means_differ_from_the_batch_mean():
    """The reference above is not met by chance: the mean of the two
    per-rank means (3 and 5 regions) is not the batch's mean."""
    x, weight, bank, bank_cls = _data()
    batch = float(
        RegionContrastLoss(use_mixup=False)(x @ weight.t(), CLASSES, IMAGES,
                                            bank, bank_cls))
    local = _local_only_loss()
    assert abs(sum(local) / 2 - batch) > 1e-3
