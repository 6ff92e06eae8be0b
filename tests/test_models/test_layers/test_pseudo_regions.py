import pytest
import torch

from rca_mm.models.layers import masked_region_features
from rca_mm.models.layers.pseudo_regions import region_masks


def _reference(feats, cams, labels):
    """Eq. 2 image by image and tag by tag."""
    out, cls, img = [], [], []
    for n in range(feats.shape[0]):
        for c in range(cams.shape[1]):
            if labels[n, c] <= 0.5:
                continue
            p = cams[n, c]
            m = (p > p.mean()).to(feats.dtype)
            if m.sum() == 0:  # empty mask: the plain spatial average
                m = torch.ones_like(m)
            out.append((feats[n] * m).sum(dim=(1, 2)) / m.sum())
            cls.append(c)
            img.append(n)
    return torch.stack(out), torch.tensor(cls), torch.tensor(img)


def test_matches_loop_reference_with_empty_mask_guard(device):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 5, 4, 6, generator=g, dtype=torch.float64)
    cams = torch.rand(3, 4, 4, 6, generator=g, dtype=torch.float64)
    cams[1, 2] = 0.3  # constant map: empty mask
    cams[2, 0] = 0.0  # all-zero map: empty mask
    labels = torch.tensor([[1., 0., 1., 1.], [0., 1., 1., 0.],
                           [1., 0., 0., 0.]])
    f, c, b = (
        t.cpu() for t in masked_region_features(
            feats.to(device), cams.to(device), labels.to(device)))
    rf, rc, rb = _reference(feats, cams, labels)
    assert torch.equal(c, rc) and torch.equal(b, rb)
    torch.testing.assert_close(f, rf, rtol=1e-12, atol=1e-12)
    # The guard: the constant map's region is the plain average of F.
    i = ((b == 1) & (c == 2)).nonzero()[0, 0]
    torch.testing.assert_close(f[i], feats[1].mean(dim=(1, 2)))


def test_hand_computed_region(device):
    # values 0, 1, 2, 3
    feats = torch.arange(4., device=device).reshape(1, 1, 2, 2)
    cams = torch.tensor([[[[0.0, 0.9], [0.1, 0.8]]]],
                        device=device)  # mean 0.45
    f, c, b = masked_region_features(feats, cams,
                                     torch.ones(1, 1, device=device))
    assert f.tolist() == [[2.0]]  # mean of 1 and 3
    assert c.tolist() == [0] and b.tolist() == [0]


def test_gradient_into_feats_only_and_bool_labels(device):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 3, 5, 5, generator=g).to(device).requires_grad_()
    cams = torch.rand(2, 3, 5, 5, generator=g).to(device).requires_grad_()
    labels = torch.tensor([[True, False, True], [False, False, True]],
                          device=device)
    f, c, b = masked_region_features(feats, cams, labels)
    assert f.shape == (3, 3) and c.tolist() == [0, 2, 2]
    assert b.tolist() == [0, 0, 1]
    f.sum().backward()
    assert cams.grad is None
    # d f_l / d F = M_l / sum(M_l), summed over the image's regions.
    expected = torch.zeros_like(feats)
    for r in range(3):
        m = region_masks(cams[b[r], c[r]])
        expected[b[r]] += (m / m.sum())[None]
    torch.testing.assert_close(feats.grad, expected)


def test_no_tag_and_bad_shapes(device):
    feats = torch.randn(2, 3, 4, 4, requires_grad=True, device=device)
    f, c, b = masked_region_features(feats,
                                     torch.rand(2, 5, 4, 4, device=device),
                                     torch.zeros(2, 5, device=device))
    assert f.shape == (0, 3) and c.numel() == 0 and b.numel() == 0
    assert f.requires_grad
    with pytest.raises(ValueError, match='spatial size'):
        masked_region_features(feats, torch.rand(2, 5, 8, 8, device=device),
                               torch.ones(2, 5, device=device))
    with pytest.raises(ValueError, match='img_labels'):
        masked_region_features(feats, torch.rand(2, 5, 4, 4, device=device),
                               torch.ones(2, 4, device=device))
