import math

import pytest
import torch
import torch.nn.functional as F

from rca_mm.models.losses import EPSSaliencyLoss
from rca_mm.registry import MODELS


def _reference(cam, sal, labels, tau, lam):
    """Plain-loop version of EPS's get_eps_loss (same-size saliency)."""
    n, c, h, w = cam.shape
    total = 0.
    for i in range(n):
        probs = [[[0.] * w for _ in range(h)] for _ in range(c)]
        for y in range(h):
            for x in range(w):
                logits = [float(cam[i, k, y, x]) for k in range(c)]
                z = sum(math.exp(v) for v in logits)
                for k in range(c):
                    probs[k][y][x] = math.exp(logits[k]) / z
        fg_classes, bg_classes = [], [c - 1]
        for k in range(c - 1):
            if labels[i][k] < 0.5:
                continue
            inter = denom = 0.
            for y in range(h):
                for x in range(w):
                    r = float(round(probs[k][y][x]))
                    inter += r * round(float(sal[i, 0, y, x]))
                    denom += r + 1e-4
            (fg_classes if inter / denom > tau else bg_classes).append(k)
        for y in range(h):
            for x in range(w):
                fg = sum(probs[k][y][x] for k in fg_classes)
                bg = sum(probs[k][y][x] for k in bg_classes)
                pred = lam * fg + (1 - lam) * (1 - bg)
                total += (pred - float(sal[i, 0, y, x]))**2
    return total / (n * h * w)


def test_hand_computed_single_pixel(device):
    # One pixel, L=2. Class 0 dominates (p=e^2/(e^2+2)) and the pixel is
    # salient: overlap 1/(1+1e-4) > 0.4 -> class 0 is foreground.
    cam = torch.tensor([2., 0., 0.], device=device).view(1, 3, 1, 1)
    sal = torch.ones(1, 1, 1, 1, device=device)
    labels = torch.tensor([[1., 1.]], device=device)
    p0 = math.exp(2) / (math.exp(2) + 2)
    p1 = p2 = 1 / (math.exp(2) + 2)
    # fg = p0; bg = p2 (background) + p1 (tagged, round(p1)=0 -> overlap 0).
    pred = 0.5 * p0 + 0.5 * (1 - (p1 + p2))
    loss = EPSSaliencyLoss()(cam, sal, labels)
    assert loss.item() == pytest.approx((pred - 1)**2, rel=1e-6)
    # Untagged class 0 joins neither map.
    loss = EPSSaliencyLoss()(cam, sal, torch.tensor([[0., 1.]], device=device))
    assert loss.item() == pytest.approx((0.5 * (1 - p1 - p2) - 1)**2, rel=1e-6)


def test_matches_loop_reference(device):
    torch.manual_seed(0)
    cam = torch.randn(3, 4, 5, 6) * 3
    sal = torch.rand(3, 1, 5, 6)
    labels = torch.tensor([[1., 0., 1.], [0., 1., 0.], [1., 1., 1.]])
    for tau, lam in ((0.4, 0.5), (0.1, 0.3), (0.9, 0.8)):
        loss = EPSSaliencyLoss(
            tau=tau, lam=lam, loss_weight=2.)(cam.to(device), sal.to(device),
                                              labels.to(device))
        ref = _reference(cam, sal, labels.tolist(), tau, lam)
        assert loss.item() == pytest.approx(2 * ref, rel=1e-5)


def test_tau_switches_class_between_maps(device):
    # Class 0 covers the left half, saliency covers 3 of its 4 pixels:
    # overlap 3/(4 + 8e-4) ~= 0.75.
    cam = torch.full((1, 2, 2, 4), -5., device=device)
    cam[0, 0, :, :2] = 5.
    cam[0, 1, :, 2:] = 5.
    sal = torch.zeros(1, 1, 2, 4, device=device)
    sal[0, 0, 0, :2] = 1.
    sal[0, 0, 1, 0] = 1.
    labels = torch.ones(1, 1, device=device)
    p = torch.softmax(cam, 1)
    as_fg = 0.5 * p[:, :1] + 0.5 * (1 - p[:, 1:])
    as_bg = 0.5 * (1 - p[:, 1:] - p[:, :1])
    for tau, pred in ((0.74, as_fg), (0.76, as_bg)):
        loss = EPSSaliencyLoss(tau=tau)(cam, sal, labels)
        torch.testing.assert_close(loss, F.mse_loss(pred, sal))


def test_resize_and_gradient(device):
    torch.manual_seed(1)
    cam = torch.randn(2, 3, 4, 4).to(device).requires_grad_()
    sal = torch.rand(2, 1, 8, 8).to(device)
    labels = torch.tensor([[1., 0.], [1., 1.]], device=device)
    for mode in ('bilinear', 'nearest'):
        loss_fn = MODELS.build(
            dict(type='EPSSaliencyLoss', saliency_resize=mode))
        small = F.interpolate(
            sal,
            size=(4, 4),
            mode=mode,
            **({} if mode == 'nearest' else dict(align_corners=False)))
        torch.testing.assert_close(
            loss_fn(cam, sal, labels), loss_fn(cam, small, labels))
    assert loss_fn.loss_name == 'loss_sal'
    loss_fn(cam, sal, labels).backward()
    assert cam.grad is not None and cam.grad.abs().sum() > 0


def test_per_image_weight(device):
    torch.manual_seed(2)
    cam = torch.randn(2, 3, 4, 4).to(device)
    sal = torch.rand(2, 1, 4, 4).to(device)
    labels = torch.ones(2, 2, device=device)
    loss_fn = EPSSaliencyLoss()
    only_first = loss_fn(
        cam, sal, labels, weight=torch.tensor([1., 0.], device=device))
    torch.testing.assert_close(only_first, loss_fn(cam[:1], sal[:1],
                                                   labels[:1]))


def test_bad_shapes_are_clear():
    loss_fn = EPSSaliencyLoss()
    with pytest.raises(ValueError, match='img_labels'):
        loss_fn(
            torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2),
            torch.zeros(1, 3))
    with pytest.raises(ValueError, match='saliency'):
        loss_fn(
            torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2), torch.zeros(1, 2))
