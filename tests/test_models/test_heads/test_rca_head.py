import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.models.layers import masked_region_features
from rca_mm.registry import MODELS


def _samples(tags, with_saliency=False, hw=(6, 6), device='cpu'):
    out = []
    for idx, t in enumerate(tags):
        s = SegDataSample(metainfo=dict(sample_idx=idx, img_path=f'{idx}'))
        s.gt_img_labels = torch.tensor(t, dtype=torch.float32, device=device)
        if with_saliency:
            s.gt_saliency = PixelData(data=torch.rand(1, *hw).to(device))
        out.append(s)
    return out


def _head(device='cpu', **kwargs):
    head = MODELS.build(
        dict(type='RCAHead', in_channels=4, num_classes=3,
             **kwargs)).to(device)
    tags = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    head.memory_bank.allocate(tags)
    return head, tags


def test_losses_follow_eq11_and_gate_writes_bank(device):
    torch.manual_seed(0)
    # every region passes nu
    head, tags = _head(device, gate_threshold=0.0)
    feats = torch.randn(3, 4, 6, 6).to(device)
    samples = _samples(tags.float().tolist(), device=device)
    losses, outputs = head.loss_and_predict(feats, samples)
    y = tags.float().to(device)
    cams_p = head.classifier(feats)
    p = cams_p.mean(dim=(2, 3))
    # Eq. 11: alpha_2 = 0.4 on L_CE(p, y), 1.0 on L_CE(o, y).
    assert torch.allclose(losses['loss_cls_p'],
                          0.4 * F.multilabel_soft_margin_loss(p, y))
    o = head.classifier_o(torch.cat([feats, torch.zeros_like(feats)], 1))
    # Before any clustering F' = 0 (documented choice).
    assert torch.allclose(losses['loss_cls_o'],
                          F.multilabel_soft_margin_loss(o.mean((2, 3)), y))
    assert torch.allclose(outputs['cams'], o)
    # The empty bank gives a zero contrast loss; then Eq. 3 writes every
    # region: its first observation initialises the entry.
    assert losses['loss_rsc'] == 0
    bank_feats, bank_classes = head.memory_bank.written_entries()
    region_feats, region_classes, _ = masked_region_features(feats, cams_p, y)
    assert len(bank_feats) == 6
    assert sorted(bank_classes.tolist()) == sorted(region_classes.tolist())
    for f in region_feats:
        assert (bank_feats - f).abs().sum(1).min() < 1e-5
    # A second step contrasts against the bank.
    losses = head.loss(feats, samples)
    assert losses['loss_rsc'] > 0


def test_loss_is_the_dict_of_loss_and_predict(device):
    torch.manual_seed(0)
    head, tags = _head(device, gate_threshold=0.0)
    twin = copy.deepcopy(head)
    feats = torch.randn(3, 4, 6, 6).to(device)
    samples = _samples(tags.float().tolist(), device=device)
    losses = head.loss(feats, samples)
    expected, maps = twin.loss_and_predict(feats, samples)
    assert isinstance(losses, dict)
    assert set(losses) == {'loss_cls_p', 'loss_rsc', 'loss_cls_o'}
    torch.testing.assert_close(losses, expected)
    # Both wrote the same bank (Eq. 3).
    torch.testing.assert_close(head.memory_bank.written_entries(),
                               twin.memory_bank.written_entries())
    o = twin.classify_o(feats)
    torch.testing.assert_close(maps['cams'], o)
    torch.testing.assert_close(maps['scores'], o.mean(dim=(2, 3)))
    assert not maps['cams'].requires_grad


def test_gate_keeps_low_scoring_regions_out(device):
    head, tags = _head(device, gate_threshold=0.99)
    head.loss(
        torch.randn(3, 4, 6, 6).to(device),
        _samples(tags.float().tolist(), device=device))
    assert head.memory_bank.num_written() == 0


def test_warmup_and_ablations(device):
    head, tags = _head(device, gate_threshold=0.0)
    feats = torch.randn(3, 4, 6, 6).to(device)
    samples = _samples(tags.float().tolist(), device=device)
    head.loss(feats, samples)  # fill the bank
    head.set_contrast(False)
    losses = head.loss(feats, samples)
    assert losses['loss_rsc'] == 0
    rsc_only, _ = _head(device, use_rsa=False, loss_weight=1.0)
    losses, outputs = rsc_only.loss_and_predict(feats, samples)
    assert set(losses) == {'loss_cls_p', 'loss_rsc'}
    assert torch.allclose(outputs['cams'], rsc_only.classifier(feats))
    rsa_only, _ = _head(device, use_rsc=False)
    assert set(rsa_only.loss(feats, samples)) == {'loss_cls_p', 'loss_cls_o'}
    with pytest.raises(ValueError, match='use_rsc and use_rsa'):
        _head(use_rsc=False, use_rsa=False)


def test_prototypes_shape_final_cams(device):
    head, tags = _head(device)
    q = torch.randn(3, 2, 4).to(device)
    head.aggregation.set_prototypes(
        q, torch.ones(3, 2, dtype=torch.bool, device=device))
    feats = torch.randn(2, 4, 5, 5).to(device)
    fp = head.aggregation(feats)
    # Eq. 7-8: S = softmax over the 6 prototypes, F' = S Q.
    flat = feats.flatten(2).transpose(1, 2)
    s = torch.softmax(flat @ q.reshape(6, 4).T, dim=-1)
    assert torch.allclose(
        fp.flatten(2).transpose(1, 2), s @ q.reshape(6, 4), atol=1e-5)
    cams = head.predict_cams(feats)
    assert torch.allclose(
        cams, head.classifier_o(torch.cat([feats, fp], dim=1)), atol=1e-5)


def test_rca_on_eps_has_saliency_losses_on_p_and_o(device):
    head, tags = _head(
        device,
        with_background=True,
        saliency_loss=dict(type='EPSSaliencyLoss'))
    losses, outputs = head.loss_and_predict(
        torch.randn(3, 4, 6, 6).to(device),
        _samples(tags.float().tolist(), with_saliency=True, device=device))
    assert {
        'loss_sal_p', 'loss_sal_o', 'loss_cls_p', 'loss_cls_o', 'loss_rsc'
    } <= set(losses)
    assert outputs['cams'].shape == (3, 3, 6, 6)  # foreground maps only


def test_gate_score_o_uses_the_final_classifier(device):
    head, tags = _head(device, gate_threshold=0.7, gate_score='o')
    feats = torch.rand(3, 4, 6, 6).to(device)
    head.classifier.weight.data.fill_(-1.0)  # p scores low: 'p' would block
    head.classifier_o.weight.data.zero_()
    head.classifier_o.weight.data[:, :4] = 1.0  # o scores high
    head.loss(feats, _samples(tags.float().tolist(), device=device))
    assert head.memory_bank.num_written() == 6
    with pytest.raises(ValueError, match='gate_score'):
        _head(gate_score='o', use_rsa=False)


def test_bank_write_waits_for_the_backward_pass(device):
    """The RSC loss reads the bank's buffer in place, so the step's Eq. 3
    write is deferred: the buffer is unchanged until the backward pass has
    run, then the next read writes it, exactly as an immediate update."""
    head, tags = _head(device, gate_threshold=0.0)
    feats = torch.randn(3, 4, 6, 6).to(device)
    samples = _samples(tags.float().tolist(), device=device)
    head.loss(feats, samples)
    # Reading the bank wrote the first step's regions.
    assert head.memory_bank.num_written() == 6
    bank = head.memory_bank
    before = bank.feats.clone()
    # A copy whose update writes at once (the order before deferral).
    reference = copy.deepcopy(head)
    write_now = reference.memory_bank.update
    reference.memory_bank.update = \
        lambda *args, defer: write_now(*args)
    x = (feats + 0.5 * torch.randn_like(feats)).requires_grad_()
    torch.manual_seed(1)
    losses = head.loss(x, samples)
    torch.manual_seed(1)
    ref_losses = reference.loss(x.detach(), samples)
    assert torch.equal(bank.feats, before) and int(bank.step) == 6
    sum(losses.values()).backward()  # would fail had the buffer changed
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for key, value in losses.items():
        torch.testing.assert_close(value, ref_losses[key])
    bank.flush()
    assert int(bank.step) == 12 and not torch.equal(bank.feats, before)
    torch.testing.assert_close(bank.feats, reference.memory_bank.feats)


def test_epoch_events_use_the_heads_own_settings(device):
    head, tags = _head(
        device,
        gate_threshold=0.0,
        rsc_warmup_epochs=2,
        aggregation=dict(
            type='PrototypeAggregation', num_prototypes=1, start_epoch=2))
    head.loss(
        torch.randn(3, 4, 6, 6).to(device),
        _samples(tags.float().tolist(), device=device))
    for epoch, active, clustered in [(0, False, False), (1, False, False),
                                     (2, True, True)]:
        head.begin_epoch(epoch)
        assert head.rsc_active is active
        assert head.aggregation.has_prototypes is clustered
    assert head.aggregation.prototypes.shape == (3, 1, 4)  # K = 1
    assert head.refresh_prototypes(1) is False  # before start_epoch
    rsc_only, _ = _head(device, use_rsa=False)
    assert rsc_only.refresh_prototypes(5) is False  # no aggregation
    fresh = MODELS.build(dict(type='RCAHead', in_channels=4,
                              num_classes=3)).to(device)
    assert not fresh.memory_bank.is_allocated
    fresh.allocate_bank(tags)
    assert fresh.memory_bank.feats.shape == (int(tags.sum()), 4)
