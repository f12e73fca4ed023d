"""ROAD, infidelity, max-sensitivity, Gini and entropy against pytorch-grad-cam, captum and Quantus."""

import random

import numpy as np
import pytest
import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.evaluate.complexity import entropy, gini
from cnnviz.interpret.evaluate.faithfulness import random_maps
from cnnviz.interpret.evaluate.road import linear_imputation, removal_counts, road
from cnnviz.interpret.evaluate.robustness import infidelity, max_sensitivity
from cnnviz.interpret.evaluate.statistics import bootstrap_interval
from tests.conftest import TinyCNN, assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


@pytest.fixture
def net(device):
    torch.manual_seed(0)
    return zoo.wrap(TinyCNN().to(device), input_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def assert_same_rng(before: tuple) -> None:
    after = rng_states()
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]


def test_linear_imputation_equals_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    image = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    removed = torch.rand(1, 1, 24, 20, generator=torch.Generator().manual_seed(2)) < 0.6
    removed[..., 0, :] = True  # the image border, where neighbours are missing
    ours = linear_imputation(image, removed)
    reference = NoisyLinearImputer(noise=0.0)(image[0], (~removed[0, 0]).float())
    torch.testing.assert_close(ours[0], reference, atol=1e-5, rtol=0)  # theirs solves in float32
    assert torch.equal(ours[~removed.expand_as(ours)], image[~removed.expand_as(image)])


def test_road_equals_pytorch_grad_cam(net):
    """32 x 32 maps with distinct values: (N - 1) * percentile / 100 never lands on an integer, so
    pytorch-grad-cam's percentile threshold and our rank counts remove the same pixels."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)).to(net.device)
    maps = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(4))
    fractions = (0.2, 0.5, 0.7)
    ours = road(net, images, maps, [0, 2], fractions=fractions, noise=0.0)
    targets = [ClassifierOutputSoftmaxTarget(0), ClassifierOutputSoftmaxTarget(2)]
    imputer = NoisyLinearImputer(noise=0.0)
    for column, fraction in enumerate(fractions):
        percentile = round(100 * (1 - fraction))
        for order, theirs in ((ours.most_relevant_first, RemoveMostRelevantFirst(percentile, imputer)),
                              (ours.least_relevant_first, RemoveLeastRelevantFirst(percentile, imputer))):
            change = PerturbationConfidenceMetric(theirs)(images, maps.numpy(), targets, net)
            torch.testing.assert_close(order[:, column] - ours.clean, torch.tensor(change).to(order), atol=1e-4,
                                       rtol=0)
    assert removal_counts(1024, [0.2]) == [205]


def test_road_noise_is_private_and_repeatable(net):
    images = torch.rand(1, 3, 32, 32, device=net.device)
    maps = torch.rand(1, 1, 32, 32)
    before, state = rng_states(), state_snapshot(net)
    first = road(net, images, maps, fractions=(0.5,), seed=7)
    assert_same_rng(before)
    assert_unchanged(state, net)
    torch.testing.assert_close(first.combined, road(net, images, maps, fractions=(0.5,), seed=7).combined)
    with pytest.raises(CnnvizError, match="between 0 and 1"):
        road(net, images, maps, fractions=(0.0, 0.5))


def test_infidelity_equals_captum(net):
    from captum.metrics import infidelity as captum_infidelity

    images = torch.rand(3, 3, 32, 32, device=net.device)
    maps = interpret.saliency(net, images)
    target = net(images).argmax(-1)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # the draw ours makes
        noise = 0.1 * torch.randn(inputs.shape, generator=torch.Generator(inputs.device).manual_seed(3),
                                  device=inputs.device)
        return noise, inputs - noise

    for normalize in (True, False):
        ours = infidelity(net, images, maps, target, samples=5, noise=0.1, seed=3, normalize=normalize,
                          batch_size=15)
        theirs = captum_infidelity(lambda x: net(x).softmax(-1), perturb, images, maps.expand_as(images).contiguous(),
                                   target=target, n_perturb_samples=5, normalize=normalize)
        torch.testing.assert_close(ours, theirs.double(), rtol=1e-4, atol=1e-12)


def test_max_sensitivity_equals_captum(net):
    from captum.metrics import sensitivity_max

    images = torch.rand(2, 3, 32, 32, device=net.device)
    target = net(images).argmax(-1)
    ours = max_sensitivity(net, images, interpret.attribution.saliency, target, samples=4, radius=0.05, seed=2, batch_size=8)

    def perturb(inputs: torch.Tensor, radius: float) -> torch.Tensor:
        g = torch.Generator(inputs.device).manual_seed(2)
        return inputs + (2 * torch.rand(inputs.shape, generator=g, device=inputs.device) - 1) * radius

    def explain(inputs, target):  # captum passes a tuple and wants one back
        return (interpret.saliency(net, inputs[0] if isinstance(inputs, tuple) else inputs, target),)

    theirs = sensitivity_max(explain, images, perturb, perturb_radius=0.05, n_perturb_samples=4, target=target)
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-5, atol=1e-8)


def test_robustness_leaves_global_rng_alone(net):
    images, maps, scores = torch.rand(2, 3, 32, 32, device=net.device), torch.rand(2, 1, 32, 32), torch.rand(8)
    before = rng_states()
    infidelity(net, images, maps, samples=2)
    max_sensitivity(net, images, interpret.attribution.saliency, samples=2)
    random_maps(images)
    bootstrap_interval(scores, resamples=200)
    assert_same_rng(before)


def test_gini_and_entropy_equal_quantus(tmp_path):
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 1, 16, 16)).astype(np.float32)
    maps[1] *= rng.random((1, 16, 16)) < 0.2  # a sparse one
    x, y = rng.random((3, 3, 16, 16)).astype(np.float32), np.zeros(3, dtype=int)
    sparseness = quantus.Sparseness(disable_warnings=True)(model=None, x_batch=x, y_batch=y, a_batch=maps.copy(),
                                                           device="cpu")
    complexity = quantus.Complexity(disable_warnings=True)(model=None, x_batch=x, y_batch=y, a_batch=maps.copy(),
                                                           device="cpu")
    # Quantus adds 1e-7 to every value before the Gini index and 1e-12 inside the log, in float32.
    np.testing.assert_allclose(gini(torch.tensor(maps)).numpy(), sparseness, atol=1e-5)
    np.testing.assert_allclose(entropy(torch.tensor(maps)).numpy(), complexity, rtol=1e-5)
    np.save(tmp_path / "map.npy", maps[1])  # (1, H, W), as explain --npy writes: a file is a map source
    assert float(gini(tmp_path / "map.npy")) == pytest.approx(float(gini(torch.tensor(maps[1:2]))))
    zero = torch.zeros(1, 1, 4, 4)
    assert gini(zero).isnan().all() and entropy(zero).isnan().all()
