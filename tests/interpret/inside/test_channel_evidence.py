"""``unit_evidence`` (activation x gradient per channel) against a closed form: after global average pooling
and a dense layer, channel c's evidence summed over its map is ``w[class, c] * mean(a_c)``."""

from __future__ import annotations

import pytest
import torch

from cnnviz import zoo
from cnnviz.interpret.inside import unit_evidence
from tests.conftest import TinyCNN, assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


@pytest.fixture
def tiny() -> zoo.ModelHandle:
    torch.manual_seed(0)
    return zoo.wrap(TinyCNN(), input_size=16, classes=["ant", "bee", "cow"], default_layer="relu2", name="tiny")


def test_evidence_sums_to_the_class_weight_times_the_mean_activation(tiny):
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    before = state_snapshot(tiny)
    evidence = unit_evidence(tiny, images, "bee")
    assert_unchanged(before, tiny)
    net = tiny.model
    activation = net.relu2(net.conv2(net.relu1(net.conv1(images)))).detach()
    expected = net.fc.weight[1].detach()[None] * activation.mean((2, 3))
    torch.testing.assert_close(evidence.sum((2, 3)), expected, rtol=1e-5, atol=1e-6)
    logits = net(images).detach()
    torch.testing.assert_close(evidence.sum((1, 2, 3)), logits[:, 1] - net.fc.bias[1].detach(), rtol=1e-5, atol=1e-5)


def test_evidence_of_the_predicted_class_and_bad_layers(tiny):
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    predicted = int(tiny(images).argmax())
    torch.testing.assert_close(unit_evidence(tiny, images), unit_evidence(tiny, images, predicted))
    before = state_snapshot(tiny)
    with pytest.raises(CnnvizError, match="not .B, C, h, w. maps"):
        unit_evidence(tiny, images, layer="fc")
    with pytest.raises(CnnvizError, match="no layer"):
        unit_evidence(tiny, images, layer="conv9")
    assert_unchanged(before, tiny)
