"""rca_mm.models.utils: the CAMs' max-normalisation and the image-by-image
prediction of a test batch."""
import pytest
import torch

from rca_mm.models.utils import max_normalize, predict_image_by_image


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


def test_predict_image_by_image_keeps_the_order():
    """Each image goes through the preprocessor and predict alone, and the
    predictions come back in batch order."""
    calls = []

    def preprocessor(data, training):
        assert training is False
        assert len(data['inputs']) == len(data['data_samples']) == 1
        return dict(
            inputs=torch.stack(data['inputs']) * 2,
            data_samples=data['data_samples'])

    def predict(inputs, samples):
        calls.append(tuple(inputs.shape))
        return [(s, float(inputs.sum())) for s in samples]

    data = dict(
        inputs=[torch.ones(3, 2, 4), torch.ones(3, 5, 1)],
        data_samples=['a', 'b'])
    out = predict_image_by_image(data, preprocessor, predict)
    assert out == [('a', 48.), ('b', 30.)]
    assert calls == [(1, 3, 2, 4), (1, 3, 5, 1)]
