"""MaCo (phase-only Fourier images with a natural magnitude), strong transforms and views: the magnitude stays
fixed while the objective rises, the spectrum is the photos' mean (numpy as the oracle), views average right."""

import numpy as np
import pytest
import torch

from cnnviz import interpret
from cnnviz.interpret.optimize import engine, objectives, param, transforms
from cnnviz.interpret.optimize.objectives import Context
from tests.conftest import assert_unchanged, state_snapshot


def _spectrum_of_output(image: param.MacoImage, pictures: torch.Tensor) -> torch.Tensor:
    """Undo the sigmoid and the colour mixing of the returned pictures, then take their amplitude spectrum."""
    linear = torch.logit(pictures.double())
    linear = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(image.color.double()), linear)
    return torch.fft.rfft2(linear, norm="ortho").abs()


def test_maco_optimizes_only_the_phase_and_the_objective_rises(tiny):
    image = param.MacoImage((2, 3, 16, 16), seed=3)
    start = image.phase.detach().clone()
    before, rng = state_snapshot(tiny), torch.get_rng_state()
    result = engine.optimize(tiny, image, objectives.over_views(objectives.class_logit([0, 2]), 2), steps=25, lr=0.1,
                             transforms=transforms.strong(16, 2), progress=False)
    assert_unchanged(before, tiny)
    assert torch.equal(torch.get_rng_state(), rng)
    assert [name for name, _ in image.named_parameters()] == ["phase"]
    assert not torch.allclose(image.phase, start)  # the phase moved ...
    spectrum = _spectrum_of_output(image, result.images)
    target = image.magnitude.double().expand_as(spectrum)
    assert torch.allclose(spectrum, target, atol=1e-4 * float(target.max()))  # ... the magnitude did not
    assert bool((result.history[-5:].mean(0) > result.history[:5].mean(0)).all())
    assert result.images.min() >= 0 and result.images.max() <= 1


def test_maco_magnitude_is_scaled_to_unit_pixel_deviation():
    with torch.no_grad():
        linear = param.MacoImage((3, 3, 24, 24), seed=0).linear()
    assert abs(float(linear.pow(2).mean()) - 1) < 1e-4  # Parseval: the spectrum's energy is the pixels'
    assert float(linear.mean((-2, -1)).abs().max()) < 1e-5  # no mean: the pictures centre on gray


def test_natural_magnitude_is_the_mean_amplitude_spectrum_of_the_decorrelated_crops():
    photos = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    crops = param.photo_crops((12, 12), photos).numpy().astype(np.float64)
    mixing = np.linalg.inv(param.COLOR_CORRELATION_SQRT.numpy() / np.linalg.norm(param.COLOR_CORRELATION_SQRT.numpy(),
                                                                                  axis=0).max())
    decorrelated = np.einsum("ij,bjhw->bihw", mixing, crops)
    decorrelated -= decorrelated.mean(axis=(-2, -1), keepdims=True)
    expected = np.abs(np.fft.rfft2(decorrelated, norm="ortho")).mean(0)
    assert np.allclose(param.natural_magnitude((12, 12), photos=photos).numpy(), expected, atol=1e-5)


def test_default_magnitude_is_recomputed_from_the_skimage_photos():
    cached = param.natural_magnitude((16, 16))
    assert torch.equal(cached, param.natural_magnitude((16, 16), photos=param.spectrum_photos()))
    assert cached[:, 1, 1].min() > cached[:, 6, 6].max()  # natural photos: low frequencies carry more energy


def test_photo_crops_keep_a_square_photo_of_the_size_as_it_is():
    photo = torch.rand(3, 10, 10)
    crops = param.photo_crops((10, 10), [photo])
    assert crops.shape == (5, 3, 10, 10) and torch.allclose(crops[0], photo, atol=1e-6)


def test_over_views_averages_the_objective_over_the_views():
    images, logits = torch.rand(2, 3, 4, 4), torch.randn(6, 5)
    context = Context(images, torch.rand(6, 3, 4, 4), logits)
    mean = objectives.over_views(objectives.class_logit([1, 4]), 3)(context)
    assert torch.allclose(mean, logits.view(3, 2, 5)[:, [0, 1], [1, 4]].mean(0))


def test_strong_transforms_draw_views_of_each_image():
    images = torch.rand(2, 3, 28, 28)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = transforms.strong(28, 3)(images)
    assert out.shape == (6, 3, 28, 28)
    assert torch.equal(transforms.views(3)(images)[4], images[0])  # view-major rows: v * B + b


def test_default_preset_works_for_channels_and_gray_models(tiny, fashion):
    pictures = interpret.actmax(tiny, unit="conv2:0-3", steps=4, progress=False)
    assert pictures.shape == (4, 3, 16, 16) and pictures.min() >= 0 and pictures.max() <= 1
    gray = interpret.actmax(fashion, unit="features.block2:3", steps=4, preset="maco", progress=False)
    assert gray.shape == (1, 1, 28, 28) and bool(torch.isfinite(gray).all())


def test_every_preset_name_has_a_recipe():
    from typing import get_args

    from cnnviz.interpret.optimize.actmax import RECIPES, Preset
    assert set(get_args(Preset)) == set(RECIPES)


@pytest.mark.parametrize("decay", [1.0, 1.5])
def test_fourier_spectrum_falls_off_as_one_over_f_to_the_decay(decay):
    """Without colour mixing, the image before its sigmoid is the orthonormal inverse FFT of spectrum x scale: its
    FFT (numpy's, an independent oracle) gives back |spectrum| / (4 f^decay), frequency by frequency."""
    image = param.FourierImage((1, 1, 32, 32), decay=decay, decorrelate=False, seed=3)
    with torch.no_grad():
        before_sigmoid = torch.logit(image()).double().numpy()[0, 0]
    amplitude = np.abs(np.fft.rfft2(before_sigmoid, norm="ortho"))
    fy, fx = np.fft.fftfreq(32)[:, None], np.fft.rfftfreq(32)[None, :]
    frequency = np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1 / 32)
    spectrum = torch.view_as_complex(image.spectrum.detach()).abs().double().numpy()[0, 0]
    inner = (slice(1, 16), slice(1, 16))  # away from the rows irfft2 folds (zero and Nyquist)
    assert np.allclose(amplitude[inner], (spectrum / (4 * frequency ** decay))[inner], rtol=1e-3, atol=1e-6)



def test_blur_gives_each_image_torchvisions_gaussian_of_its_own_drawn_sigma():
    from torchvision.transforms.functional import gaussian_blur

    images = torch.rand(3, 2, 20, 24)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        blurred = transforms.blur(1.5)(images)
        torch.manual_seed(5)
        sigmas = (torch.rand(3) * 1.5).clamp_min(1e-3).tolist()
    for image, out, sigma in zip(images, blurred, sigmas):
        assert torch.allclose(out, gaussian_blur(image[None], [7, 7], [sigma, sigma])[0], atol=1e-5)
    assert len(set(round(s, 3) for s in sigmas)) == 3  # each image its own
