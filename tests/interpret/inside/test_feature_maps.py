"""Feature maps: equal to a hand-run forward, sorted by mean activation, stopping early, no leaks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz import interpret
from cnnviz.cli.main import main
from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.inside.feature_maps import channel_order, feature_maps
from tests.conftest import SharedConv, assert_unchanged, state_snapshot
from tests.interpret.inside.test_receptive_field import one_thread  # noqa: F401  (autouse: one intra-op thread)
from cnnviz.zoo.core import CnnvizError, hook_counts


def test_maps_equal_a_forward_by_hand(tiny, device):
    x = torch.rand(3, 3, 16, 16, device=device)
    net = tiny.model
    with torch.no_grad():
        expected = net.conv2(net.relu1(net.conv1((x - tiny.mean) / tiny.std)))
    maps = feature_maps(tiny, x, layer="conv2", batch_size=2)
    torch.testing.assert_close(maps, expected)
    assert feature_maps(tiny, x, layer="conv2", upsample=True).shape == (3, 6, 16, 16)
    torch.testing.assert_close(feature_maps(tiny, x), expected)  # the default layer is conv2


def test_channel_order_is_by_mean_then_layer_order():
    maps = torch.zeros(2, 4, 3, 3)
    maps[0, 1] = 2.0
    maps[0, 3] = 1.0
    maps[1, 2, 0, 0] = 9.0  # mean 1, max 9
    maps[1, 0] = 2.0  # mean 2, max 2
    assert channel_order(maps).tolist() == [[1, 3, 0, 2], [0, 2, 1, 3]]
    assert channel_order(maps, "max").tolist()[1] == [2, 0, 1, 3]
    assert channel_order(maps, "none").tolist() == [[0, 1, 2, 3]] * 2
    with pytest.raises(CnnvizError, match="unknown channel order"):
        channel_order(maps, "median")  # type: ignore[arg-type]


def test_layer_output_stops_after_the_layer():
    class Trap(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("ran past the layer")

    net = nn.Sequential(nn.Conv2d(3, 2, 3), Trap())
    assert layer_output(net, "0", torch.rand(1, 3, 8, 8)).shape == (1, 2, 6, 6)
    assert hook_counts(net)["_forward_hooks"] == 0


def test_registered_as_a_features_method(tiny, device):
    method = interpret.get_method("feature_maps", "features")
    assert method.uses_layer
    out = method.fn(tiny.model, torch.rand(1, 3, 16, 16, device=device), layer="conv1")
    assert out.shape == (1, 4, 16, 16)


def test_errors_and_no_mutation(tiny, device):
    tiny.train()
    before = state_snapshot(tiny)
    x = torch.rand(2, 3, 16, 16, device=device)
    feature_maps(tiny, x, layer="conv1")
    with pytest.raises(CnnvizError, match="not \\(B, C, H, W\\)"):
        feature_maps(tiny, x, layer="fc")
    with pytest.raises(CnnvizError, match="no layer"):
        feature_maps(tiny, x, layer="conv3")
    assert_unchanged(before, tiny)

    with pytest.raises(CnnvizError, match="runs 2 times"):
        feature_maps(SharedConv(), torch.rand(1, 3, 8, 8), layer="conv")


def test_cli_featuremaps(tmp_path, capsys):
    assert main(["featuremaps", "--image", "chelsea", "--layer", "blocks.2", "--max-channels", "8",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert main(["featuremaps", "--image", "coffee", "--layer", "blocks.5", "--overlay", "--sort", "none",
                 "--max-channels", "4", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"chelsea-blocks.2-maps.png", "coffee-blocks.5-maps.png"}
    assert main(["featuremaps", "--image", "chelsea", "--layer", "classifier", "--out", str(tmp_path),
                 "--device", "cpu"]) == 2
    assert "not (B, C, H, W) maps" in capsys.readouterr().err
