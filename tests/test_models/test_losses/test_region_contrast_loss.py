import math

import pytest
import torch

from rca_mm.models.losses import RegionContrastLoss
from rca_mm.registry import MODELS

TAU = 0.07


def _ref_nce(f, cls, bank, bank_cls, tau=TAU):
    """Eq. 4 written out: a loop over the positives, a sum over negatives."""
    sims = [torch.dot(f, m) / (f.norm() * m.norm()) / tau for m in bank]
    pos = [s for s, c in zip(sims, bank_cls.tolist()) if c == cls]
    neg = [s for s, c in zip(sims, bank_cls.tolist()) if c != cls]
    if not pos or not neg:
        return None
    neg_sum = sum(torch.exp(s) for s in neg)
    terms = [-torch.log(torch.exp(p) / (torch.exp(p) + neg_sum)) for p in pos]
    return sum(terms) / len(terms)


def _ref_loss(feats, classes, partner, omega, bank, bank_cls):
    """Eq. 5-6 region by region; unmixed where the partner is the region."""
    per_region = []
    for i in range(feats.shape[0]):
        c, p = int(classes[i]), int(partner[i])
        if p == i:
            term = _ref_nce(feats[i], c, bank, bank_cls)
        else:
            w = float(omega[i])
            mixed = w * feats[i] + (1 - w) * feats[p]  # Eq. 5
            own = _ref_nce(mixed, c, bank, bank_cls)
            other = _ref_nce(mixed, int(classes[p]), bank, bank_cls)
            parts = []
            if own is not None:
                parts.append(w * own)
            if other is not None:
                parts.append((1 - w) * other)
            term = sum(parts) if parts else None
        if term is not None:
            per_region.append(term)
    return sum(per_region) / len(per_region)


def _data(seed=0, r=6, s=40, d=8, num_classes=4, device='cpu'):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(r, d, generator=g, dtype=torch.float64)
    classes = torch.randint(num_classes, (r, ), generator=g)
    images = torch.arange(r) // 2
    bank = torch.randn(s, d, generator=g, dtype=torch.float64)
    bank_cls = torch.randint(num_classes, (s, ), generator=g)
    return tuple(
        t.to(device) for t in (feats, classes, images, bank, bank_cls))


def test_registered_and_defaults():
    loss = MODELS.build(dict(type='RegionContrastLoss'))
    assert isinstance(loss, RegionContrastLoss)
    assert loss.loss_name == 'loss_rsc'
    assert loss.temperature == 0.07 and loss.mixup_beta == 8.0
    assert loss.use_mixup and loss.reduction == 'mean'
    with pytest.raises(ValueError, match='reduction'):
        RegionContrastLoss(reduction='none')
    with pytest.raises(ValueError, match='temperature'):
        RegionContrastLoss(temperature=0)


def test_eq4_without_mixup_matches_loop_reference(device):
    feats, classes, images, bank, bank_cls = _data(device=device)
    loss = RegionContrastLoss(use_mixup=False, chunk_size=7)
    f = feats.clone().requires_grad_()
    out = loss(f, classes, images, bank, bank_cls)
    f_ref = feats.clone().requires_grad_()
    ref = _ref_loss(f_ref, classes, torch.arange(6), torch.ones(6), bank,
                    bank_cls)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.backward()
    ref.backward()
    torch.testing.assert_close(f.grad, f_ref.grad, rtol=1e-5, atol=1e-5)


def test_eq4_float32_and_float16_bank(device):
    feats, classes, images, bank, bank_cls = _data(seed=1, device=device)
    ref = _ref_loss(feats, classes, torch.arange(6), torch.ones(6), bank,
                    bank_cls)
    loss = RegionContrastLoss(use_mixup=False)
    out32 = loss(feats.float(), classes, images, bank.float(), bank_cls)
    torch.testing.assert_close(out32.double(), ref, rtol=1e-5, atol=1e-5)
    out16 = loss(feats.float(), classes, images, bank.half(), bank_cls)
    assert abs(float(out16) - float(ref)) < 1e-2


@pytest.mark.parametrize('missing_class', [False, True])
def test_eq6_mixup_matches_loop_reference(missing_class, device):
    feats, classes, images, bank, bank_cls = _data(seed=2, r=8, device=device)
    if missing_class:
        # Class 3 has no positive: only the partner's term of its regions
        # (and of the regions mixed with them) counts.
        bank_cls = bank_cls.clamp_max(2)
        assert bool((classes == 3).any())
    loss = RegionContrastLoss(mixup_beta=8.0, chunk_size=16)
    partner, omega = loss.sample_mixup(
        classes, images,
        torch.Generator(device=device).manual_seed(3))
    # Partners: another image and another class, or the region itself.
    for i, p in enumerate(partner.tolist()):
        if p != i:
            assert images[p] != images[i] and classes[p] != classes[i]
        else:
            assert float(omega[i]) == 1.0
    assert bool((partner != torch.arange(8, device=device)).any())
    f = feats.clone().requires_grad_()
    out = loss(
        f,
        classes,
        images,
        bank,
        bank_cls,
        generator=torch.Generator(device=device).manual_seed(3))
    f_ref = feats.clone().requires_grad_()
    ref = _ref_loss(f_ref, classes, partner, omega, bank, bank_cls)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.backward()
    ref.backward()
    torch.testing.assert_close(f.grad, f_ref.grad, rtol=1e-5, atol=1e-5)


def test_mixup_partners_are_uniform_and_omega_is_beta(device):
    classes = torch.tensor([0, 1, 2, 3, 0], device=device)
    images = torch.tensor([0, 1, 2, 3, 4], device=device)
    loss = RegionContrastLoss(mixup_beta=8.0)
    g = torch.Generator(device=device).manual_seed(0)
    counts = torch.zeros(5, 5, device=device)
    omegas = []
    for _ in range(2000):
        partner, omega = loss.sample_mixup(classes, images, g)
        counts[torch.arange(5, device=device), partner] += 1
        omegas.append(omega)
    # Region 0 (class 0) may pair with regions 1, 2, 3, each ~1/3.
    assert counts[0, 0] == 0 and counts[0, 4] == 0
    assert (counts[0, 1:4] / 2000 - 1 / 3).abs().max() < 0.05
    # Beta(8, 8): mean 1/2, variance 1/68.
    omegas = torch.cat(omegas)
    assert abs(float(omegas.mean()) - 0.5) < 0.01
    assert abs(float(omegas.var()) - 1 / 68) < 0.002


def test_no_partner_uses_unmixed_eq4(device):
    feats, _, _, bank, bank_cls = _data(seed=4, device=device)
    same_class = torch.full((6, ), 2, device=device)
    images = torch.arange(6, device=device)
    mixed = RegionContrastLoss()(feats, same_class, images, bank, bank_cls)
    plain = RegionContrastLoss(use_mixup=False)(feats, same_class, images,
                                                bank, bank_cls)
    assert torch.equal(mixed, plain)
    one_image = torch.zeros(6, dtype=torch.long, device=device)
    classes = torch.arange(6, device=device) % 4
    mixed = RegionContrastLoss()(feats, classes, one_image, bank, bank_cls)
    plain = RegionContrastLoss(use_mixup=False)(feats, classes, one_image,
                                                bank, bank_cls)
    assert torch.equal(mixed, plain)


def test_missing_positives_or_negatives(device):
    feats, classes, images, bank, bank_cls = _data(seed=5, device=device)
    # Class 3 has no written entry: its regions have no Eq. 4 term.
    bank_cls = bank_cls.clamp_max(2)
    loss = RegionContrastLoss(use_mixup=False, reduction='sum')
    out = loss(feats, classes, images, bank, bank_cls)
    ref = sum(
        _ref_nce(feats[i], int(classes[i]), bank, bank_cls) for i in range(6)
        if int(classes[i]) != 3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # Nothing left: zero loss still connected to the region features.
    f = feats.clone().requires_grad_()
    only_other = torch.zeros(40, dtype=torch.long, device=device) + 7
    out = RegionContrastLoss()(f, classes, images, bank, only_other)
    assert float(out.detach()) == 0.0 and out.grad_fn is not None
    out.backward()
    assert torch.equal(f.grad, torch.zeros_like(f))
    # A bank with one class has no negatives.
    out = RegionContrastLoss()(f, classes, images, bank,
                               torch.zeros(
                                   40, dtype=torch.long, device=device))
    assert float(out.detach()) == 0.0 and out.requires_grad
    # Empty bank or no region.
    with torch.no_grad():
        assert float(RegionContrastLoss()(f, classes, images, bank[:0],
                                          bank_cls[:0])) == 0.0
        assert float(RegionContrastLoss()(f[:0], classes[:0], images[:0], bank,
                                          bank_cls)) == 0.0


def test_no_negative_readings_agree(device):
    """A region with positives but no negative: Eq. 4 read literally (an
    empty sum of negatives) gives -log(e^a / e^a) = 0 per positive; the loss
    leaves the term out. Both give L_RM = 0 with a zero gradient, with and
    without mixup, because such a bank holds one class only."""
    feats, classes, images, bank, _ = _data(seed=6, device=device)
    one_class = torch.full((40, ), int(classes[0]), device=device)
    assert (classes == classes[0]).sum() < len(classes)  # other classes too
    for use_mixup in (True, False):
        f = feats.clone().requires_grad_()
        out = RegionContrastLoss(use_mixup=use_mixup)(f, classes, images, bank,
                                                      one_class)
        out.backward()
        assert float(out.detach()) == 0.0
        assert torch.equal(f.grad, torch.zeros_like(f))


def test_entries_of_class_minus_one_are_ignored(device):
    """A bank passed in place (unwritten slots of class -1, zero rows) gives
    the loss and gradient of its written rows alone."""
    feats, classes, images, bank, bank_cls = _data(seed=7, r=8, device=device)
    unwritten = torch.arange(40, device=device) % 3 == 0
    in_place_cls = torch.where(unwritten, -1, bank_cls)
    in_place = bank.masked_fill(unwritten[:, None], 0.0)
    loss = RegionContrastLoss(chunk_size=16)
    outs = []
    for b, c in ((in_place, in_place_cls), (bank[~unwritten],
                                            bank_cls[~unwritten])):
        f = feats.clone().requires_grad_()
        g = torch.Generator(device=device).manual_seed(3)
        out = loss(f, classes, images, b, c, generator=g)
        out.backward()
        outs.append((out, f.grad))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])
    # Only unwritten slots: no term.
    out = loss(feats, classes, images, in_place, torch.full_like(bank_cls, -1))
    assert float(out) == 0.0


def test_gradient_only_into_region_feats_and_loss_weight(device):
    feats, classes, images, bank, bank_cls = _data(seed=6, device=device)
    f = feats.float().requires_grad_()
    b = bank.float().requires_grad_()
    out = RegionContrastLoss(loss_weight=0.5)(
        f,
        classes,
        images,
        b,
        bank_cls,
        generator=torch.Generator(device=device).manual_seed(0))
    out.backward()
    assert b.grad is None
    assert f.grad is not None and torch.isfinite(f.grad).all()
    assert f.grad.abs().sum() > 0
    full = RegionContrastLoss(loss_weight=1.0)(
        feats.float(),
        classes,
        images,
        bank.float(),
        bank_cls,
        generator=torch.Generator(device=device).manual_seed(0))
    assert math.isclose(out.item() * 2, full.item(), rel_tol=1e-6)
