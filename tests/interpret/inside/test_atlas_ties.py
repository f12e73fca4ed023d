"""Ties at the ceiling of a saturating layer (ReLU6) are ranked by the pre-activation, then by index."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz import zoo
from cnnviz.interpret.inside import neuron_atlas


def relu6_net() -> zoo.ModelHandle:
    """One 1x1 conv of weight 10 (the pre-activation is 10 x the pixel), then ReLU6, then a head."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(10.0)
        conv.bias.zero_()
    model = nn.Sequential()
    model.add_module("body", nn.Sequential(conv, nn.ReLU6()))
    model.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(16, 2)))
    return zoo.wrap(model.eval(), input_size=4, mean=(0.0,), std=(1.0,), classes=["a", "b"], name="relu6")


@pytest.mark.parametrize("batch_size", [2, 5])  # merged across batches, or in one
def test_ties_at_the_ceiling_follow_the_pre_activation_then_the_index(batch_size):
    peaks = [0.7, 0.9, 0.3, 0.8, 0.65, 0.9]  # pre-activation maxima 7, 9, 3, 8, 6.5, 9; ReLU6: 6 6 3 6 6 6
    where = [(0, 0), (1, 2), (3, 3), (2, 1), (0, 3), (3, 0)]
    images = torch.full((6, 1, 4, 4), 0.1)
    for i, (peak, (y, x)) in enumerate(zip(peaks, where)):
        images[i, 0, y, x] = peak
        if peak > 0.61:
            images[i, 0, (y + 2) % 4, x] = 0.61  # saturated too (6.1 -> 6), but not the strongest unit
    atlas = neuron_atlas(relu6_net(), "body", images, top=6, bottom=0, batch_size=batch_size, progress=False)
    # by hand: the five at the ceiling by pre-activation 9 (item 1), 9 (item 5: the larger index), 8, 7, 6.5; then 3
    assert atlas.top_indices[0].tolist() == [1, 5, 3, 0, 4, 2]
    assert atlas.top_values[0].tolist() == pytest.approx([6.0, 6.0, 6.0, 6.0, 6.0, 3.0])
    assert atlas.top_ties[0].tolist() == pytest.approx([9.0, 9.0, 8.0, 7.0, 6.5, 3.0])
    assert atlas.top_positions[0].tolist() == [list(where[i]) for i in [1, 5, 3, 0, 4, 2]]  # the strongest unit


def test_a_layer_that_does_not_saturate_keeps_ties_to_the_smaller_index():
    model = relu6_net()
    images = torch.full((3, 1, 4, 4), 0.5)
    atlas = neuron_atlas(model, "body.0", images, top=3, bottom=0, progress=False)
    assert atlas.top_indices[0].tolist() == [0, 1, 2] and atlas.top_ties[0].tolist() == [0.0, 0.0, 0.0]


def test_a_saturating_module_that_is_not_the_layers_answer_leaves_the_ranking_alone():
    class Skip(nn.Module):  # ReLU6 registered last, but the block answers its input plus it
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU6()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.act(x)

    model = nn.Sequential()
    model.add_module("body", Skip())
    model.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(16, 2)))
    handle = zoo.wrap(model.eval(), input_size=4, mean=(0.0,), std=(1.0,), classes=["a", "b"], name="skip")
    images = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    atlas = neuron_atlas(handle, "body", images, top=5, bottom=0, progress=False)
    peaks = (2 * images).flatten(1).amax(1)  # x + relu6(x) for x in [0, 1]
    assert atlas.top_indices[0].tolist() == peaks.argsort(descending=True).tolist()
    assert atlas.top_ties[0].tolist() == [0.0] * 5
