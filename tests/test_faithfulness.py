import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import interpret
from interpret.faithfulness import (blurred_canvas, deletion_insertion, pixel_ranks, random_maps,
                                    randomization_check, spearman)
from tests.conftest import assert_unchanged, state_snapshot
from tests.test_attribution import RegionScore
from zoo.errors import CnnvizError


def test_pixel_ranks_most_salient_first():
    one_channel = torch.tensor([[[[0.1, 0.9], [0.5, -0.7]]]])  # signed evidence: highest first
    assert pixel_ranks(one_channel).tolist() == [[2, 0, 1, 3]]
    channels = torch.stack([one_channel[:, 0], -one_channel[:, 0] * 0.1], 1)  # gradients: max |value|
    assert pixel_ranks(channels).tolist() == [[3, 0, 2, 1]]


def test_spearman_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    b[0] = a[0] * 2 + 0.01 * b[0]
    ours = spearman(torch.tensor(a), torch.tensor(b))
    expected = [spearmanr(a[i], b[i]).statistic for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6)


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


def test_maps_must_match_images(tiny, device):
    with pytest.raises(CnnvizError, match="do not match"):
        deletion_insertion(tiny, torch.rand(1, 3, 16, 16, device=device), torch.rand(1, 1, 4, 4, device=device))


def test_randomization_separates_gradcam_from_guided_backprop(lite0, photos):
    before = state_snapshot(lite0)
    cam = randomization_check(lite0, photos, interpret.gradcam, max_steps=2)
    guided = randomization_check(lite0, photos, interpret.guided_backprop, max_steps=2)
    assert cam.layers == guided.layers == ["classifier", "head.bn"]
    assert cam.correlations[-1].mean() < 0.6  # Grad-CAM depends on the weights...
    assert guided.correlations[-1].mean() > 0.9  # ...guided backprop hardly does (Adebayo et al.)
    assert_unchanged(before, lite0)
