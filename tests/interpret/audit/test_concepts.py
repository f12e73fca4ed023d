"""Concepts by NMF: scikit-learn's factorization, importance by a hand-computed removal, the model left as found."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import NMF
from torch import nn

from cnnviz import interpret, zoo
from cnnviz.interpret.audit.concepts import NMF_SETTINGS, class_concepts
from cnnviz.zoo.core import CnnvizError
from tests.conftest import assert_unchanged, state_snapshot


def test_the_factorization_is_scikit_learns(fashion):
    images = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    found = class_concepts(fashion, images, 3, "features.block2.act", list(range(12)), concepts=4, seed=2)
    activations = interpret.layer_output(fashion, "features.block2.act", images).detach()
    matrix = activations.permute(0, 2, 3, 1).reshape(-1, activations.shape[1]).double().numpy()
    oracle = NMF(n_components=4, random_state=2, **NMF_SETTINGS).fit(matrix)
    rebuilt = sum(np.einsum("nhw,c->nhwc", c.maps.astype(np.float64), c.vector.astype(np.float64)) for c in found)
    ours = np.linalg.norm(matrix - rebuilt.reshape(matrix.shape))
    assert abs(ours - oracle.reconstruction_err_) <= 1e-3
    assert [c.id for c in found] == [0, 1, 2, 3]
    assert [c.importance for c in found] == sorted((c.importance for c in found), reverse=True)


def test_importance_is_the_class_score_drop_when_the_concept_is_removed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2))
    handle = zoo.wrap(net, input_size=6, mean=(0.0,), std=(1.0,), classes=["a", "b"], name="toy")
    images = torch.rand(5, 1, 6, 6)
    found = class_concepts(handle, images, 1, "1", list("abcde"), concepts=2)
    weight = net[3].weight[1].detach().reshape(3, 6, 6).numpy()
    for concept in found:  # the logit is linear in the layer's output: the drop is the weight on the reconstruction
        removed = np.einsum("nhw,c->nchw", concept.maps, concept.vector)
        assert concept.importance == pytest.approx(float((removed * weight).sum((1, 2, 3)).mean()), rel=1e-4, abs=1e-5)
        assert all(0 <= v <= 1 for crop in concept.crops for v in crop["box"])
        assert concept.crops[0]["item"] == "abcde"[int(np.argmax(concept.maps.reshape(5, -1).max(1)))]
    assert set(found[0].to_json()) == {"id", "importance", "vector", "crops"}
    assert len(found[0].to_json(maps=True)["maps"]["values"]) == 5


def test_the_model_and_the_random_state_are_left_as_found(fashion):
    images = torch.rand(4, 1, 28, 28)
    fashion.model.train()
    try:
        before, torch_rng, numpy_rng = state_snapshot(fashion), torch.get_rng_state(), np.random.get_state()
        class_concepts(fashion, images, 0, "features.block3.act", list(range(4)), concepts=2)
        assert_unchanged(before, fashion)
        assert torch.equal(torch.get_rng_state(), torch_rng)
        assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_rng))
        with pytest.raises(CnnvizError, match="negative activations"):
            class_concepts(fashion, images, 0, "features.block3.conv", list(range(4)))
        assert_unchanged(before, fashion)
    finally:
        fashion.model.eval()


def test_bad_arguments():
    handle = zoo.wrap(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)), input_size=4,
                      mean=(0.0,), std=(1.0,), name="toy")
    with pytest.raises(CnnvizError, match="ids"):
        class_concepts(handle, torch.rand(3, 1, 4, 4), 0, "1", [1, 2])
    with pytest.raises(CnnvizError, match="feature maps"):
        class_concepts(handle, torch.rand(3, 1, 4, 4), 0, "3", [1, 2, 3])
