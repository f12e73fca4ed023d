"""Feature inversion: the reconstruction error falls, early layers give the photo back, scores are right."""

import pytest
import torch

from cnnviz.interpret import inversion_scores, invert
from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.optimize.inversion import preset_for
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


def test_inversion_matches_the_embedding_better_than_gray_and_leaves_the_model(tiny, device):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16, device=device)
    tiny.train()
    before = state_snapshot(tiny)
    rebuilt = invert(tiny, images, layer="conv2", steps=150, lr=0.05, tv_weight=0.0, alpha_weight=0.0,
                     progress=False)
    assert rebuilt.shape == images.shape and rebuilt.min() >= 0 and rebuilt.max() <= 1
    gray = inversion_scores(tiny, images, torch.full_like(images, 0.5), "conv2")["error"]
    error = inversion_scores(tiny, images, rebuilt, "conv2")["error"]
    assert all(e < 0.25 * g for e, g in zip(error, gray))
    assert_unchanged(before, tiny)


def test_scores_equal_a_hand_computation(tiny, device):
    torch.manual_seed(1)
    images, other = torch.rand(2, 3, 16, 16, device=device), torch.rand(2, 3, 16, 16, device=device)
    same = inversion_scores(tiny, images, images, "conv1")
    assert same["error"] == [0.0, 0.0] and same["class_kept"] == [True, True]
    phi, phi_hat = layer_output(tiny, "conv1", images).flatten(1), layer_output(tiny, "conv1", other).flatten(1)
    expected = ((phi_hat - phi).pow(2).sum(1) / phi.pow(2).sum(1)).tolist()
    assert inversion_scores(tiny, images, other, "conv1")["error"] == pytest.approx(expected, rel=1e-5)


def test_deeper_layers_get_stronger_smoothing(lite0):
    presets = [preset_for(lite0, layer) for layer in ("stem", "blocks.3", "blocks.8", "blocks.13", "head")]
    assert all(a.tv_weight < b.tv_weight and a.jitter <= b.jitter for a, b in zip(presets, presets[1:]))


def test_inversion_needs_images_and_a_known_layer(tiny):
    with pytest.raises(CnnvizError, match="needs the images"):
        invert(tiny, None, layer="conv2")
    with pytest.raises(CnnvizError, match="conv2"):
        invert(tiny, torch.rand(1, 3, 16, 16), layer="conv3", steps=1)


@pytest.mark.slow
def test_stem_inversion_of_a_photo_gives_the_photo_back(lite0, photos):
    coffee = photos[1:]
    rebuilt = invert(lite0, coffee, layer="stem", steps=100, progress=False)
    scores = inversion_scores(lite0, coffee, rebuilt, "stem")
    assert scores["error"][0] < 0.01 and scores["class_kept"] == [True]
    assert (rebuilt - coffee).abs().mean() < 0.05
