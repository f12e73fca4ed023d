import copy
import math
import random

import numpy as np
import pytest
import torch

from cnnviz import interpret
from cnnviz.interpret.evaluate.faithfulness import (
    RandomBand,
    blurred_canvas,
    deletion_insertion,
    pixel_ranks,
    random_maps,
    randomization_check,
    reinitialize,
)
from tests.conftest import assert_unchanged, state_snapshot
from tests.interpret.attribution.test_methods import RegionScore
from cnnviz.zoo.core import CnnvizError


def test_pixel_ranks_most_salient_first():
    one_channel = torch.tensor([[[[0.1, 0.9], [0.5, -0.7]]]])  # signed evidence: highest first
    assert pixel_ranks(one_channel).tolist() == [[2, 0, 1, 3]]
    channels = torch.stack([one_channel[:, 0], -one_channel[:, 0] * 0.1], 1)  # gradients: max |value|
    assert pixel_ranks(channels).tolist() == [[3, 0, 2, 1]]


def test_curve_endpoints_are_the_clean_black_and_blurred_images(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    curves = deletion_insertion(tiny, x, random_maps(x), [0, 2], steps=4)
    with torch.no_grad():
        clean = tiny(x).softmax(-1)[[0, 1], [0, 2]]
        black = tiny(torch.zeros_like(x)).softmax(-1)[[0, 1], [0, 2]]
        blurred = tiny(blurred_canvas(x)).softmax(-1)[[0, 1], [0, 2]]
    torch.testing.assert_close(curves.deletion[:, 0], clean)
    torch.testing.assert_close(curves.deletion[:, -1], black)
    torch.testing.assert_close(curves.insertion[:, 0], blurred)
    torch.testing.assert_close(curves.insertion[:, -1], clean)
    assert curves.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_a_map_of_the_true_evidence_beats_random(device):
    x = torch.full((1, 3, 32, 32), 0.1, device=device)
    x[..., :8, :8] = 1.0  # a bright patch the model reads, on a dark ground (blurring dims it)
    truth = torch.zeros(1, 1, 32, 32, device=device)
    truth[..., :8, :8] = 1.0
    good = deletion_insertion(RegionScore(), x, truth, 1, steps=16)
    chance = deletion_insertion(RegionScore(), x, random_maps(x), 1, steps=16)
    assert good.deletion_auc < chance.deletion_auc
    assert good.insertion_auc > chance.insertion_auc


class LitShare(torch.nn.Module):
    """Class 1's logit is 10 x the mean of the red channel, class 0's is 0: on an all-white image, deleting a
    share f of the pixels to black leaves class 1 the probability sigmoid(10 (1 - f))."""

    def forward(self, x):
        lit = x[:, 0].mean((1, 2)) * 10
        return torch.stack([torch.zeros_like(lit), lit], 1)


def test_the_areas_follow_the_trapezoid_rule_over_the_removed_fractions(device):
    images = torch.ones(2, 3, 8, 8, device=device)
    images[1] = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # blurring changes it: insertion moves
    maps = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(device)
    curves = deletion_insertion(LitShare(), images, maps, 1, steps=4)
    by_hand = [1 / (1 + math.exp(-10 * (1 - f))) for f in (0, 0.25, 0.5, 0.75, 1)]  # 16 of 64 pixels a step
    torch.testing.assert_close(curves.deletion[0].double().cpu(), torch.tensor(by_hand, dtype=torch.float64))
    area = 0.25 * (by_hand[0] / 2 + sum(by_hand[1:-1]) + by_hand[-1] / 2)  # 0.917; the plain mean is 0.883
    assert float(curves.deletion_auc[0]) == pytest.approx(area, rel=1e-5)
    fractions = curves.fractions.cpu().numpy()
    for curve, auc in ((curves.deletion, curves.deletion_auc), (curves.insertion, curves.insertion_auc)):
        oracle = [np.trapezoid(row, fractions) for row in curve.double().cpu().numpy()]
        np.testing.assert_allclose(auc.cpu().numpy(), oracle, rtol=1e-5)


def test_the_random_band_is_the_draws_mean_and_central_quantiles():
    draws = torch.rand(3, 41, generator=torch.Generator().manual_seed(2))
    band = RandomBand(deletion=draws, insertion=1 + draws.flip(1))
    for metric in ("deletion", "insertion"):
        values = getattr(band, metric).double().numpy()
        mean, low, high = (part.numpy() for part in band.interval(metric, level=0.9))
        np.testing.assert_allclose(mean, values.mean(1))
        np.testing.assert_allclose(low, np.quantile(values, 0.05, axis=1))
        np.testing.assert_allclose(high, np.quantile(values, 0.95, axis=1))
    _, low, high = (part.numpy() for part in band.interval("deletion"))
    scores = torch.tensor([low[0] - 1e-3, (low[1] + high[1]) / 2, math.nan], dtype=torch.float64)
    assert band.beats("deletion", scores).tolist() == [True, False, False]  # below the band; inside; NaN never
    _, low, high = (part.numpy() for part in band.interval("insertion"))
    scores = torch.tensor([high[0] + 1e-3, low[1] - 1e-3, math.nan], dtype=torch.float64)
    assert band.beats("insertion", scores).tolist() == [True, False, False]  # above the band; below it; NaN never


def test_maps_must_match_the_batch_and_smaller_maps_are_resized(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    with pytest.raises(CnnvizError, match="do not match"):
        deletion_insertion(tiny, x, torch.rand(3, 1, 16, 16, device=device))
    small = torch.rand(2, 1, 4, 4, device=device)
    resized = torch.nn.functional.interpolate(small, size=(16, 16), mode="bilinear", align_corners=False)
    a = deletion_insertion(tiny, x, small.cpu().numpy(), 0, steps=4)  # a numpy array is a map source too
    b = deletion_insertion(tiny, x, resized, 0, steps=4)
    torch.testing.assert_close(a.deletion, b.deletion)


def test_a_constant_map_has_no_curve_area(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    maps = torch.rand(2, 1, 16, 16, device=device)
    maps[1] = 0.5
    curves = deletion_insertion(tiny, x, maps, 0, steps=4)
    assert curves.deletion_auc[0].isfinite() and curves.deletion_auc[1].isnan() and curves.insertion_auc[1].isnan()
    assert curves.undefined[0] is None and "constant" in curves.undefined[1]


def rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def assert_same_rng(before: tuple) -> None:
    after = rng_states()
    assert torch.equal(before[0], after[0]), "torch's global RNG moved"
    assert np.array_equal(before[1], after[1]), "numpy's global RNG moved"
    assert before[2] == after[2], "python's RNG moved"


def test_reinitialize_draws_from_its_generator_only(tiny):
    before = rng_states()
    first, second = copy.deepcopy(tiny.model), copy.deepcopy(tiny.model)
    reinitialize(first, torch.Generator().manual_seed(5))
    assert_same_rng(before)
    reinitialize(second, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.conv1.weight, tiny.model.conv1.weight)


def test_randomization_leaves_global_rng_and_model_alone(tiny, device):
    x = torch.rand(2, 3, 32, 32, device=device)  # HOG needs 24 x 24 at least
    before, state = rng_states(), state_snapshot(tiny)
    result = randomization_check(tiny, x, interpret.attribution.saliency, seed=3, measures=("spearman", "ssim", "hog"),
                                 absolute=False)
    assert_same_rng(before)
    assert_unchanged(state, tiny)
    again = randomization_check(tiny, x, interpret.attribution.saliency, seed=3, measures=("spearman",), absolute=False)
    assert result.layers == again.layers == ["fc", "conv2", "conv1"]
    for a, b in zip(result.correlations, again.correlations):
        torch.testing.assert_close(a, b)  # its own generator: the same seed repeats exactly
    assert set(result.scores) == {"spearman", "ssim", "hog"} and len(result.undefined) == 3


def test_randomization_separates_gradcam_from_guided_backprop(lite0, photos):
    before = state_snapshot(lite0)
    cam = randomization_check(lite0, photos, interpret.gradcam, max_steps=2)
    guided = randomization_check(lite0, photos, interpret.guided_backprop, max_steps=2)
    assert cam.layers == guided.layers == ["classifier", "head.bn"]
    assert np.nanmax(cam.correlations[0].cpu().numpy()) < 0.6  # Grad-CAM depends on the weights...
    assert guided.correlations[-1].min() > 0.9  # ...guided backprop hardly does (Adebayo et al.)
    # A randomized map that is constant (Grad-CAM after head.bn here) has no correlation, and says why.
    for value, reason in zip(cam.correlations[-1].tolist(), cam.undefined[-1]):
        assert (reason is None) == np.isfinite(value) and (reason is None or "constant" in reason)
    assert_unchanged(before, lite0)


def test_absolute_compares_magnitudes_and_signed_compares_signs(tiny, device):
    x = torch.rand(2, 3, 32, 32, device=device)
    signed = torch.randn(2, 3, 32, 32, device=device)
    calls = []

    def flips_sign(handle, images, target):  # the original map, then its negative for every randomized model
        calls.append(handle)
        return signed if len(calls) == 1 else -signed

    magnitude = randomization_check(tiny, x, flips_sign, max_steps=1, measures=("spearman", "ssim"))
    calls.clear()
    sign = randomization_check(tiny, x, flips_sign, max_steps=1, measures=("spearman", "ssim"), absolute=False)
    torch.testing.assert_close(magnitude.correlations[0], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(sign.correlations[0], -torch.ones(2, dtype=torch.float64))
    assert (sign.scores["ssim"][0] < 0).all() and not sign.absolute
