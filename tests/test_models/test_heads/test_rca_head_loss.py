"""RCAHead.loss against references assembled by hand.

The batch holds the dataset images 4, 1 and 3 (``sample_idx``), so an image
id that is the index in the batch (0, 1, 2) writes other entries than the
right one and the tests below tell the two apart.
"""
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.registry import MODELS

L, D = 3, 4
# Tags of the five dataset images; row i is the image with sample_idx i.
TAGS = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 0, 1], [1, 1, 0]],
                    dtype=torch.bool)
BATCH = [4, 1, 3]


def _samples(saliency=None, device='cpu'):
    out = []
    for n, idx in enumerate(BATCH):
        s = SegDataSample(metainfo=dict(sample_idx=idx, img_path=f'{idx}'))
        s.gt_img_labels = TAGS[idx].float().to(device)
        if saliency is not None:
            s.gt_saliency = PixelData(data=saliency[n])
        out.append(s)
    return out


def _head(device='cpu', **kwargs):
    head = MODELS.build(
        dict(type='RCAHead', in_channels=D, num_classes=L, **kwargs))
    head.init_weights()
    head.to(device)
    head.memory_bank.allocate(TAGS)
    return head


def _regions_by_hand(feats, cams):
    """Eq. 2 region by region: image-major, then class, with sample_idx."""
    rows, classes, images = [], [], []
    for n, idx in enumerate(BATCH):
        for c in TAGS[idx].nonzero()[:, 0].tolist():
            mask = (cams[n, c] > cams[n, c].mean()).float()
            if mask.sum() == 0:
                mask = torch.ones_like(mask)  # the empty-mask guard
            rows.append((feats[n] * mask).sum((1, 2)) / mask.sum())
            classes.append(c)
            images.append(idx)
    device = feats.device
    return (torch.stack(rows), torch.tensor(classes, device=device),
            torch.tensor(images, device=device))


def test_loss_rsc_is_alpha1_times_region_contrast_on_the_same_draws(device):
    torch.manual_seed(0)
    head = _head(device, gate_threshold=0.0)  # every region is written
    samples = _samples(device=device)
    head.loss(torch.randn(3, D, 5, 5).to(device), samples)  # fills the bank
    bank_feats, bank_classes = head.memory_bank.written_entries()
    assert len(bank_feats) == 6  # 6 of the bank's 9 slots: some unwritten
    assert head.memory_bank.feats.shape[0] == int(TAGS.sum())
    feats = torch.randn(3, D, 5, 5).to(device)
    torch.manual_seed(7)
    losses = head.loss(feats, samples)
    region_feats, classes, images = _regions_by_hand(feats,
                                                     head.classifier(feats))
    reference = MODELS.build(
        dict(type='RegionContrastLoss', temperature=0.07, mixup_beta=8.0))
    torch.manual_seed(7)
    expected = reference(region_feats, classes, images, bank_feats,
                         bank_classes)
    torch.testing.assert_close(losses['loss_rsc'], 0.01 * expected)
    assert losses['loss_rsc'] > 0
    # The draws do mix: some region has a partner other than itself.
    torch.manual_seed(7)
    partner, omega = reference.sample_mixup(classes, images)
    assert (partner != torch.arange(len(classes), device=device)).any()
    assert ((omega > 0) & (omega < 1)).any()


def test_gate_threshold_is_strict(device):
    """Eq. 3 and docs/rca.md: a region is written when sigma(p_l) > nu, so
    a region exactly at nu stays out."""
    head = _head(device)
    feats = (torch.rand(3, D, 5, 5) + 0.1).to(device)  # positive everywhere
    w = head.classifier.weight.data
    w.zero_()  # class 0: P_0 = 0, p_0 = 0, sigma(p_0) = 0.5 exactly
    w[1] = -1.0  # class 1: p_1 < 0
    w[2] = 1.0  # class 2: p_2 > 0
    scores = head.classifier(feats).mean((2, 3)).sigmoid()
    assert torch.all(scores[:, 0] == 0.5)
    head.gate_threshold = 0.5
    head.loss(feats, _samples(device=device))
    _, classes = head.memory_bank.written_entries()
    assert classes.tolist() == [2, 2]  # images 1 and 3; class 0 is out
    below = float(torch.nextafter(torch.tensor(0.5), torch.tensor(0.0)))
    head = _head(device, gate_threshold=below)
    head.classifier.weight.data.copy_(w)
    head.loss(feats, _samples(device=device))
    _, classes = head.memory_bank.written_entries()
    assert sorted(classes.tolist()) == [0, 0, 2, 2]


def test_regions_are_written_under_their_sample_idx(device):
    torch.manual_seed(0)
    head = _head(device, gate_threshold=0.0)
    feats = torch.randn(3, D, 5, 5).to(device)
    head.loss(feats, _samples(device=device))
    region_feats, classes, images = _regions_by_hand(feats,
                                                     head.classifier(feats))
    bank = head.memory_bank
    bank.flush()
    written = bank.written.nonzero()[:, 0]
    got = {
        (int(bank.slot_class[s]), int(bank.slot_image[s])): bank.feats[s]
        for s in written
    }
    assert sorted(got) == sorted(zip(classes.tolist(), images.tolist()))
    for f, c, i in zip(region_feats, classes.tolist(), images.tolist()):
        torch.testing.assert_close(got[(c, i)], f)
    # The same images in another batch order update the same entries
    # (Eq. 3 with gamma = 0.99).
    order = [2, 0, 1]
    second = torch.randn(3, D, 5, 5).to(device)
    samples = _samples(device=device)
    head.loss(second[order], [samples[n] for n in order])
    new_feats, _, _ = _regions_by_hand(second, head.classifier(second))
    bank.flush()
    assert int(bank.written.sum()) == len(got)
    for f, g, c, i in zip(region_feats, new_feats, classes.tolist(),
                          images.tolist()):
        slot = int(bank.lookup[c, i])
        torch.testing.assert_close(bank.feats[slot], 0.99 * f + 0.01 * g)


def _eps_by_hand(cams, saliency, tags, tau=0.4, lam=0.5):
    """EPS's saliency loss pixel by pixel, image by image and class by class
    (docs of ``EPSSaliencyLoss``), on maps and saliency of one size."""
    n, c, h, w = cams.shape
    total = 0.0
    branches = set()
    for i in range(n):
        probs = cams[i].softmax(0)
        sal = saliency[i, 0]
        fg = torch.zeros(h, w)
        bg = probs[c - 1].clone()
        for k in range(c - 1):
            if not tags[i, k]:
                continue
            fg_mask = probs[k] > 0.5
            overlap = (fg_mask & (sal > 0.5)).sum() / (
                fg_mask.sum() + 1e-4 * h * w)
            if overlap > tau:
                fg += probs[k]
                branches.add('fg')
            else:
                bg += probs[k]
                branches.add('bg')
        pred = lam * fg + (1 - lam) * (1 - bg)
        total += ((pred - sal)**2).sum()
    return total / (n * h * w), branches


def test_eps_saliency_losses_on_p_and_o_by_hand():
    torch.manual_seed(3)
    head = _head(
        with_background=True, saliency_loss=dict(type='EPSSaliencyLoss'))
    torch.nn.init.normal_(head.classifier.weight, std=2.0)
    torch.nn.init.normal_(head.classifier_o.weight, std=2.0)
    protos = torch.randn(L, 2, D)
    head.aggregation.set_prototypes(protos, torch.ones(L, 2, dtype=bool))
    feats = torch.randn(3, D, 6, 6)
    cams_p = head.classifier(feats)
    # Salient where class 0 scores high: class 0 joins the foreground map,
    # the other tagged classes mostly the background map.
    saliency = (cams_p[:, :1].sigmoid() + 0.2 * torch.rand(3, 1, 6, 6)).clamp(
        0, 1)
    losses = head.loss(feats, _samples(saliency))
    # F' = S Q by hand (Eq. 7-8), then O on [F, F'] (Eq. 9-10).
    pixels = feats.flatten(2).transpose(1, 2)
    flat_q = protos.reshape(-1, D)
    f_prime = (pixels @ flat_q.T).softmax(-1) @ flat_q
    f_prime = f_prime.transpose(1, 2).reshape(3, D, 6, 6)
    cams_o = F.conv2d(torch.cat([feats, f_prime], 1), head.classifier_o.weight)
    tags = TAGS[BATCH]
    expected_p, branches_p = _eps_by_hand(cams_p, saliency, tags)
    expected_o, branches_o = _eps_by_hand(cams_o, saliency, tags)
    # The fixture reaches both branches of the blend.
    assert branches_p | branches_o == {'fg', 'bg'}
    torch.testing.assert_close(losses['loss_sal_p'], expected_p)
    torch.testing.assert_close(losses['loss_sal_o'], expected_o)
    assert not torch.isclose(expected_p, expected_o)
