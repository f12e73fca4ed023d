"""Receptive fields: hand-computed numbers, published numbers, and gradient probing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnviz import zoo
from cnnviz.interpret.inside.fields import (
    Box,
    layer_field,
    receptive_field,
    receptive_fields,
    unit_gradient,
    verify_receptive_field,
)
from tests.conftest import SharedConv, assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError, hook_counts


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared CPU, OpenMP threads fighting for cores slow a pass 50-fold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fields(model: nn.Module, size: int, every_module: bool = False) -> dict[str, tuple]:
    """``name: (size, jump, start)`` along y for each layer with a known field."""
    return {r.name: (r.field.size[0], r.field.jump[0], r.field.start[0]) for r in
            receptive_fields(model, input_size=size, every_module=every_module) if r.field is not None}


# --- arithmetic, by hand -----------------------------------------------------------------------

def test_conv3_conv3s2_pool2_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2))
    # size: 3, then 3 + (3-1)*1 = 5, then 5 + (2-1)*2 = 7; jump 1, 2, 4; no padding: start 0.
    assert fields(net, 32) == {"0": (3, 1, 0), "2": (5, 2, 0), "4": (7, 4, 0)}


def test_padding_dilation_and_offset_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                        nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.AvgPool2d(3, stride=2, padding=1))
    # start: -1, then -1 - 1*1 = -2, then -2 - 2*2 = -6, then -6 - 1*2 = -8.
    # size: 3, 5, 5 + 2*2*2 = 13, 13 + 2*2 = 17; jump 1, 2, 2, 4.
    assert fields(net, 32) == {"0": (3, 1, -1), "1": (5, 2, -2), "2": (13, 2, -6), "3": (17, 4, -8)}
    field = receptive_field(net, "3", input_size=32)
    assert field.offset == (0.0, 0.0)  # centre of unit (0, 0): -8 + (17 - 1) / 2
    assert field.box(1, 2, clip=False) == Box(-4, 0, 13, 17)
    assert field.box(1, 2) == Box(0, 0, 13, 17)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.b(self.a(x))
        out += x  # in place, as torchvision writes it
        return out


class Branches(nn.Module):
    """Inception-like: 1x1, 3x3 and a 5x5 path padded on the top/left only, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.one = nn.Conv2d(2, 1, 1)
        self.three = nn.Conv2d(2, 1, 3, padding=1)
        self.five = nn.Conv2d(2, 1, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.five(F.pad(x, (4, 0, 4, 0)))
        return torch.cat([self.one(x), self.three(x), five], dim=1)


def test_residual_and_branches_take_the_largest_box():
    net = nn.Sequential(nn.Conv2d(2, 2, 3, stride=2, padding=1), Residual(), Branches())
    got = fields(net, 16, every_module=True)
    assert got["1.a"] == (7, 2, -3) and got["1.b"] == (11, 2, -5)
    assert got["1"] == (11, 2, -5)  # the identity path's 3-pixel box lies inside
    # Branches on (11, 2, -5): 1x1 -> [-5, 6); 3x3 -> [-7, 8); 5x5 after a pad of 4 before -> [-13, 6).
    assert got["2.five"] == (19, 2, -13)
    assert got["2"] == (21, 2, -13)  # the union [-13, 8): wider than any one branch
    field = receptive_field(net, "2", input_size=16)
    assert [(c, size[0], start[0]) for c, size, start in field.channel_runs] == [(1, 11, -5), (1, 15, -7), (1, 19, -13)]
    assert field.box(0, 0, channel=0, clip=False) == Box(-5, -5, 6, 6)
    assert all(p.ok for p in verify_receptive_field(net, "2", input_size=16))


def test_tf_same_padding_depends_on_input_size():
    conv = zoo.models.efficientnet_lite.Conv2dSame(3, 4, 3, stride=2)
    assert (conv.same_padding(224, 0), conv.same_padding(225, 0)) == ((0, 1), (1, 1))
    assert receptive_field(nn.Sequential(conv), "0", input_size=224).start == (0, 0)
    assert receptive_field(nn.Sequential(conv), "0", input_size=225).start == (-1, -1)


# --- published numbers -------------------------------------------------------------------------

def test_alexnet_published_values():
    got = fields(torchvision.models.alexnet(), 224)
    assert got["features.0"][:2] == (11, 4)
    assert got["features.10"][:2] == (163, 16)  # conv5
    assert got["features.12"][:2] == (195, 32)  # pool5


def test_vgg16_published_values():
    # Padding is fixed, so the numbers hold at any input size; 64 px keeps the test quick.
    got = fields(torchvision.models.vgg16(), 64)
    assert got["features.28"][:2] == (196, 16)  # conv5_3
    assert got["features.30"][:2] == (212, 32)  # pool5


def test_resnet18_layer4_is_435():
    handle = zoo.load("resnet18", device="cpu", weights=None)
    assert receptive_field(handle, "layer4").size == (435, 435)
    assert receptive_field(handle, "layer4").jump == (32, 32)


# --- gradient probing ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [224, 225])
@pytest.mark.parametrize("layer", ["stem.conv", "blocks.1.depthwise.conv", "blocks.4", "blocks.10.depthwise",
                                   "head"])
def test_lite0_boxes_match_gradients(lite0, layer, size):
    probes = verify_receptive_field(lite0, layer, input_size=size)
    for probe in probes:
        assert probe.zero_outside, probe  # nothing outside the box reaches the unit
        assert probe.dense_inside, probe  # every pixel inside does
        assert probe.support_box == probe.box, probe
        assert probe.gradient_box is None or (probe.box.top <= probe.gradient_box.top and
                                              probe.gradient_box.bottom <= probe.box.bottom)


@pytest.mark.parametrize("layer", ["maxpool", "layer1.1", "layer2.0.downsample", "layer3.0.conv2", "layer4"])
def test_resnet18_boxes_match_gradients(layer):
    handle = zoo.load("resnet18", device="cpu", weights=None)
    assert all(p.ok for p in verify_receptive_field(handle, layer, input_size=160))


def test_googlenet_concatenated_branches_match_gradients():
    handle = zoo.load("googlenet", device="cpu", weights=None)
    field = receptive_field(handle, "inception3b", input_size=96)
    assert not field.same_for_all  # the 1x1 branch sees less than the 3x3 ones
    probes = verify_receptive_field(handle, "inception3b", input_size=96)
    assert any(p.unit[0] > 0 for p in probes) and all(p.ok for p in probes)  # every branch checked


def test_real_gradient_is_exactly_zero_outside_the_box(lite0):
    field = receptive_field(lite0, "blocks.3")
    grad = unit_gradient(lite0, "blocks.3", (5, 10, 20))
    box = field.box(10, 20)
    outside = torch.ones_like(grad, dtype=torch.bool)
    outside[box.top:box.bottom, box.left:box.right] = False
    assert grad[outside].abs().max() == 0
    assert grad[~outside].abs().max() > 0


# --- honesty and errors -------------------------------------------------------------------------

def test_unknown_operation_is_reported_not_guessed():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(4, 4, 3))
    field, reason = layer_field(net, "2", input_size=16)
    assert field is None and "interpolate" in reason
    with pytest.raises(CnnvizError, match="cannot be computed by arithmetic"):
        receptive_field(net, "2", input_size=16)
    assert receptive_field(net, "0", input_size=16).size == (3, 3)


def test_reflection_padding_is_unknown():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"))
    assert layer_field(net, "0", input_size=8)[0] is None


def test_shared_module_is_refused():
    with pytest.raises(CnnvizError, match="runs 2 times"):
        receptive_field(SharedConv(), "conv", input_size=8)
    rows = receptive_fields(SharedConv(), input_size=8)
    assert [r.name for r in rows] == ["conv", "conv (call 2)"]
    assert [r.field.size[0] for r in rows] == [3, 5]


def test_bad_input_errors(tiny):
    with pytest.raises(CnnvizError, match="no layer"):
        receptive_field(tiny, "conv9")
    with pytest.raises(CnnvizError, match="cannot be computed"):
        receptive_field(tiny, "fc")
    with pytest.raises(CnnvizError, match="outside"):
        receptive_field(tiny, "conv2").box(8, 0)
    with pytest.raises(CnnvizError, match="outside"):
        unit_gradient(tiny, "conv2", (6, 0, 0))


def test_model_left_unchanged(tiny):
    tiny.train()
    before = state_snapshot(tiny)
    receptive_fields(tiny)
    verify_receptive_field(tiny, "conv2")
    with pytest.raises(CnnvizError):
        unit_gradient(tiny, "conv2", (0, 99, 0))
    assert_unchanged(before, tiny)
    assert hook_counts(tiny) == before["hooks"]


def test_cli_table_with_gradient_check(capsys):
    from cnnviz.cli.main import main

    assert main(["receptive-fields", "--model", "alexnet", "--size", "128", "--verify", "--device", "cpu"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["features.10"][3:] == ["163", "16", "15.0", "ok"]  # size, jump, offset, check
    assert main(["receptive-fields", "--model", "alexnet", "--all", "--device", "cpu"]) == 0
    assert "unknown: flatten moved the spatial dimensions" in capsys.readouterr().out
