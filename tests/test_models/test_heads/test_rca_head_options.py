"""RCAHead's fidelity options away from their defaults (docs/rca.md)."""
import torch
import torch.nn.functional as F

from rca_mm.registry import MODELS
from .test_rca_head_loss import BATCH, D, L, _head, _regions_by_hand, _samples


def test_classifier_bias_is_zero_initialised_and_trained(device):
    plain = _head(device)
    assert plain.classifier.bias is None and plain.classifier_o.bias is None
    bare = MODELS.build(
        dict(
            type='RCAHead', in_channels=D, num_classes=L,
            classifier_bias=True))  # zero before init_weights too
    head = _head(device, classifier_bias=True)
    for conv in (bare.classifier, bare.classifier_o, head.classifier,
                 head.classifier_o):
        assert conv.bias.shape == (L, ) and torch.all(conv.bias == 0)
    torch.manual_seed(0)
    feats = torch.randn(3, D, 5, 5).to(device)
    bias = torch.tensor([0.5, -1.0, 2.0], device=device)
    head.classifier.bias.data.copy_(bias)
    head.classifier_o.bias.data.copy_(-bias)
    cams_p = F.conv2d(feats, head.classifier.weight) + bias[:, None, None]
    torch.testing.assert_close(head.classify(feats), cams_p)
    cams_o = F.conv2d(
        torch.cat([feats, torch.zeros_like(feats)], 1),
        head.classifier_o.weight) - bias[:, None, None]
    torch.testing.assert_close(head.predict_cams(feats), cams_o)
    losses = head.loss(feats, _samples(device=device))
    sum(losses.values()).backward()
    for conv in (head.classifier, head.classifier_o):
        assert conv.bias.grad is not None and conv.bias.grad.abs().sum() > 0


def _dropout_head(device, dropout_in_regions, **gate):
    """An RCA head with dropout 0.5, ``dropout_in_regions`` and the gate
    settings ``gate``."""
    return _head(
        device,
        dropout_ratio=0.5,
        dropout_in_regions=dropout_in_regions,
        **gate)


def test_regions_and_gate_from_undropped_maps(device):
    torch.manual_seed(0)
    feats = (torch.rand(3, D, 6, 6) - 0.3).to(device)
    weight = torch.tensor(
        [[1., -1., 0.5, 0.], [-0.5, 1., 0., 1.], [0., 0.5, -1., 1.]],
        device=device)
    written = {}
    for flag in (True, False):
        head = _dropout_head(device, flag, gate_threshold=0.5)
        head.classifier.weight.data.copy_(weight[:, :, None, None])
        torch.manual_seed(1)
        head.loss(feats, _samples(device=device))
        bank = head.memory_bank
        bank.flush()
        slots = bank.written.nonzero()[:, 0]
        written[flag] = {
            (int(bank.slot_class[s]), int(bank.slot_image[s])): bank.feats[s]
            for s in slots
        }
        torch.manual_seed(1)
        dropped = head.dropout(feats)  # the draw of the step's P
        maps = head.classifier(dropped if flag else feats).detach()
        region_feats, classes, images = _regions_by_hand(feats, maps)
        n = torch.tensor([BATCH.index(i) for i in images.tolist()],
                         device=device)
        gate = maps.mean((2, 3))[n, classes].sigmoid() > 0.5
        assert 0 < int(gate.sum()) < len(gate)
        expected = {
            (c, i): f
            for f, c, i, g in zip(region_feats, classes.tolist(),
                                  images.tolist(), gate) if g
        }
        assert sorted(written[flag]) == sorted(expected)
        for key, f in expected.items():
            torch.testing.assert_close(written[flag][key], f)
    # The two settings write different banks here.
    assert written[True].keys() != written[False].keys() or any(
        not torch.allclose(f, written[False][k])
        for k, f in written[True].items())


def test_undropped_gate_of_o(device):
    torch.manual_seed(0)
    feats = torch.rand(3, D, 6, 6).to(device)
    written = {}
    for flag in (True, False):
        head = _dropout_head(device, flag, gate_score='o', gate_threshold=0.7)
        head.classifier.weight.data.fill_(-1.0)  # p scores low
        head.classifier_o.weight.data.zero_()
        head.classifier_o.weight.data[:, :D] = 0.5
        torch.manual_seed(1)
        head.loss(feats, _samples(device=device))
        written[flag] = head.memory_bank.num_written()
    o = head.classify_o(feats, dropout=False).mean((2, 3)).sigmoid()
    assert torch.all(o > 0.7)  # undropped, every region passes
    assert written[False] == 6 and written[True] < 6
