"""rca_mm.models.utils: the CAMs' max-normalisation."""
import pytest
import torch

from rca_mm.models.utils import max_normalize


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_max_normalize_is_the_formula_of_every_former_copy(dtype):
    """Bit-identical to the three expressions it replaces: the classifier's
    per-class and background normalisation (3-D) and the figures' (4-D)."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 5, 7, 9, generator=gen).to(dtype)
    maps[0, 1] = 0  # an all-zero map
    maps[1, 2] = 1e-7  # below eps
    one = maps[0]
    assert torch.equal(
        max_normalize(one),
        one / one.amax(dim=(1, 2), keepdim=True).clamp_min(1e-5))
    assert torch.equal(
        max_normalize(maps),
        maps / maps.amax(dim=(2, 3), keepdim=True).clamp_min(1e-5))
    bg = one[:1]
    assert torch.equal(max_normalize(bg), bg / bg.amax().clamp_min(1e-5))


def test_max_normalize_values():
    maps = torch.tensor([[[0., 2.], [1., 4.]], [[0., 0.], [0., 0.]],
                         [[0., 5e-6], [0., 0.]]])
    out = max_normalize(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0., .5], [.25, 1.]]))
    assert torch.equal(out[1], torch.zeros(2, 2))  # no division by 0
    # A maximum below eps is divided by eps.
    torch.testing.assert_close(out[2], torch.tensor([[0., .5], [0., 0.]]))
    assert max_normalize(maps, eps=1e-6)[2].max() == 1
