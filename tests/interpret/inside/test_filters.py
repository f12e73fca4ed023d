"""Filters: exact normalization, the right layer, the right mode, drawn without blur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from cnnviz import zoo
from cnnviz.cli.main import main
from cnnviz.interpret.inside.filters import conv_layers, conv_weight, filters, normalize_each
from cnnviz.interpret.views.pixels import to_uint8
from tests.conftest import assert_unchanged, state_snapshot
from tests.interpret.inside.test_receptive_field import one_thread  # noqa: F401  (autouse: one intra-op thread)
from cnnviz.zoo.core import CnnvizError


def test_first_layer_rgb_each_filter_spans_zero_to_one():
    net = torchvision.models.alexnet()
    tiles = filters(net)
    weight = net.features[0].weight.detach()
    assert tiles.shape == (64, 3, 11, 11)
    low = weight.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = weight.flatten(1).max(1).values.view(-1, 1, 1, 1)
    torch.testing.assert_close(tiles, (weight - low) / (high - low))
    assert torch.equal(tiles.flatten(1).amin(1), torch.zeros(64))
    assert torch.equal(tiles.flatten(1).amax(1), torch.ones(64))


def test_default_is_the_first_conv_in_any_model(lite0):
    assert conv_weight(lite0)[0] == "stem.conv"
    assert filters(lite0).shape == (32, 3, 3, 3)
    assert conv_weight(zoo.load("resnet18", device="cpu", weights=None))[0] == "conv1"
    assert [n for n, _ in conv_layers(nn.Sequential(nn.Linear(2, 2)))] == []
    with pytest.raises(CnnvizError, match="no 2-D conv layer"):
        filters(nn.Sequential(nn.Linear(2, 2)))


def test_deeper_layer_per_input_channel_and_mean(lite0):
    weight = lite0.layer("blocks.1.expand.conv").weight.detach()  # (96, 16, 1, 1)
    per_channel = filters(lite0, "blocks.1.expand.conv", mode="channels")
    assert per_channel.shape == (96, 16, 1, 1)
    torch.testing.assert_close(per_channel, normalize_each(weight))
    mean = filters(lite0, "blocks.2.depthwise.conv")  # auto: a deep layer is drawn as its mean
    assert mean.shape == (144, 1, 3, 3)
    torch.testing.assert_close(mean, normalize_each(lite0.layer("blocks.2.depthwise.conv").weight.detach()))


def test_gray_model_filters_are_one_channel():
    net = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.Conv2d(8, 4, 3))
    handle = zoo.wrap(net, input_size=28, mean=(0.3,), std=(0.3,))
    assert filters(handle).shape == (8, 1, 5, 5)
    assert filters(handle, "2").shape == (4, 1, 3, 3)


def test_constant_filter_is_mid_gray():
    tiles = normalize_each(torch.stack([torch.full((3, 2, 2), 7.0), torch.arange(12.0).view(3, 2, 2)]))
    assert torch.equal(tiles[0], torch.full((3, 2, 2), 0.5))
    assert tiles[1].min() == 0 and tiles[1].max() == 1


def test_errors_and_no_mutation(lite0):
    before = state_snapshot(lite0)
    with pytest.raises(CnnvizError, match="not a conv layer"):
        filters(lite0, "blocks.1.expand.bn")
    with pytest.raises(CnnvizError, match="no layer"):
        filters(lite0, "stem.convv")
    with pytest.raises(CnnvizError, match="only 1 or 3"):
        filters(lite0, "blocks.1.expand.conv", mode="rgb")
    with pytest.raises(CnnvizError, match="unknown filter mode"):
        filters(lite0, mode="colour")  # type: ignore[arg-type]
    filters(lite0, "head.conv", mode="channels")
    assert_unchanged(before, lite0)


def test_cli_draws_filters_enlarged_without_blur(lite0, tmp_path):
    assert main(["filters", "--out", str(tmp_path), "--device", "cpu"]) == 0
    drawn = np.asarray(Image.open(tmp_path / "efficientnet_lite0-stem.conv-filters.png").convert("RGB"))
    tile = to_uint8(filters(lite0)[0])  # 3x3, enlarged 16 times by nearest neighbour
    scale = 16
    assert np.array_equal(drawn[:3 * scale:scale, :3 * scale:scale], tile)
    assert np.array_equal(drawn[:3 * scale, :3 * scale], np.kron(tile, np.ones((scale, scale, 1), np.uint8)))
    assert main(["filters", "--layer", "blocks.1.expand.conv", "--mode", "channels", "--max-filters", "4",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert (tmp_path / "efficientnet_lite0-blocks.1.expand.conv-filters.png").is_file()
    assert main(["filters", "--layer", "blocks.1.expand.bn", "--out", str(tmp_path), "--device", "cpu"]) == 2
