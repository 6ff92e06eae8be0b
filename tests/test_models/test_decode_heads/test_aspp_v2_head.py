"""ASPPV2Head: DeepLabV2's ASPP-L, four dilated 3x3 convs summed."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rca_mm.models.decode_heads import ASPPV2Head


def make_head(**kwargs):
    cfg = dict(in_channels=6, num_classes=4)
    cfg.update(kwargs)
    head = ASPPV2Head(**cfg)
    head.init_weights()
    return head


def test_output_shape_and_structure():
    head = make_head()
    assert head.dilations == (6, 12, 18, 24)
    assert not hasattr(head, 'conv_seg')
    # Only the four classifier convs, no BN, no image pooling.
    assert len(head.aspp_convs) == 4
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for m in head.modules())
    for conv, d in zip(head.aspp_convs, (6, 12, 18, 24)):
        assert conv.kernel_size == (3, 3)
        assert conv.dilation == (d, d) and conv.padding == (d, d)
        assert conv.in_channels == 6 and conv.out_channels == 4
        assert torch.all(conv.bias == 0)
        assert 0.005 < conv.weight.std().item() < 0.02  # N(0, 0.01)
    feats = [torch.randn(2, 3, 11, 13), torch.randn(2, 6, 11, 13)]
    assert head(feats).shape == (2, 4, 11, 13)


def test_output_is_sum_of_branches_computed_by_hand():
    torch.manual_seed(0)
    head = make_head(dilations=(1, 2, 3, 5), in_index=0)
    for conv in head.aspp_convs:
        torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 6, 9, 10)
    expected = torch.zeros(2, 4, 9, 10)
    for conv, d in zip(head.aspp_convs, (1, 2, 3, 5)):
        expected += F.conv2d(x, conv.weight, conv.bias, padding=d, dilation=d)
    torch.testing.assert_close(head([x]), expected)
    # One branch checked pixel by pixel from the definition of a dilated
    # 3x3 conv with zero padding.
    conv, d = head.aspp_convs[1], 2
    xp = F.pad(x, (d, d, d, d))
    ref = torch.empty(2, 4, 9, 10)
    for i in range(9):
        for j in range(10):
            patch = xp[:, :, i:i + 2 * d + 1:d, j:j + 2 * d + 1:d]
            ref[:, :, i, j] = torch.einsum('bcuv,kcuv->bk', patch,
                                           conv.weight) + conv.bias
    torch.testing.assert_close(conv(x), ref, rtol=1e-4, atol=1e-5)


def test_loss_and_predict_through_base_head():
    head = make_head(dilations=(1, 2))
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=torch.randint(0, 4, (1, 16, 16))),
        metainfo=dict(img_shape=(16, 16), pad_shape=(16, 16)))
    losses = head.loss([torch.randn(1, 6, 4, 4)], [sample], dict())
    assert losses['loss_ce'].item() == pytest.approx(
        torch.log(torch.tensor(4.)).item(), abs=0.1)  # near-zero init: uniform


def _branch_sum(head, x):
    """The four default dilated 3x3 convs of ``x``, added by hand."""
    return sum(
        F.conv2d(x, conv.weight, conv.bias, padding=d, dilation=d)
        for conv, d in zip(head.aspp_convs, (6, 12, 18, 24)))


def test_dropout_and_bad_arguments():
    torch.manual_seed(0)
    head = make_head(dropout_ratio=0.5)
    assert isinstance(head.dropout, torch.nn.Dropout2d)
    for conv in head.aspp_convs:
        torch.nn.init.normal_(conv.bias)
    head.eval()
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(head([x]), head([x]))
    # Eval: no dropout, the plain sum of the branches.
    torch.testing.assert_close(head([x]), _branch_sum(head, x))
    # Train: one channel mask (Dropout2d) on the input, shared by all four
    # branches; the same seed draws the same mask.
    head.train()
    torch.manual_seed(1)
    dropped = head.dropout(x)
    zeroed = (dropped == 0).all(dim=(2, 3))
    assert zeroed.any() and not zeroed.all()
    torch.testing.assert_close(dropped[~zeroed], 2 * x[~zeroed])
    torch.manual_seed(1)
    out = head([x])
    torch.testing.assert_close(out, _branch_sum(head, dropped))
    assert not torch.allclose(out, _branch_sum(head, x))
    with pytest.raises(TypeError, match='channels'):
        make_head(channels=8)
    with pytest.raises(ValueError, match='dilations'):
        make_head(dilations=())
