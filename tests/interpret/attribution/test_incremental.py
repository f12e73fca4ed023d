"""The incremental occlusion engine: maps equal the full pass, on real and random networks, state untouched."""

import copy

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.incremental import IncrementalForward, OcclusionRows, engine_graph, window_values
from cnnviz.interpret.attribution.incremental.fusion import fold, padded_conv2d, same_conv2d
from tests.conftest import assert_unchanged, state_snapshot
from tests.zoo.test_compiled import Branchy  # control flow on the data: torch.fx cannot trace it
from cnnviz.zoo.models.efficientnet_lite import Conv2dSame
from cnnviz.zoo.core import pad_same


def assert_maps_equal(ours: torch.Tensor, full: torch.Tensor, share: float = 1e-4) -> None:
    """Equal to ``share`` of the full map's range (the issue's bar)."""
    spread = (full.amax() - full.amin()).clamp(min=1e-12)
    assert ((ours - full).abs().amax() / spread).item() <= share


def both_paths(handle: zoo.ModelHandle, images: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    return (interpret.occlusion(handle, images, incremental="exact", **options),
            interpret.occlusion(handle, images, incremental="off", **options))


def two_occluded_rows() -> tuple[torch.Tensor, ...]:
    """(image, top, left, occluded) of two windows of image 0."""
    return torch.zeros(2, dtype=torch.long), torch.tensor([0, 4]), torch.tensor([3, 0]), torch.tensor([True, True])


def photos_at(handle: zoo.ModelHandle, size: int) -> torch.Tensor:
    pictures = handle.prepare([zoo.load_image("chelsea"), zoo.load_image("coffee")])
    return nn.functional.interpolate(pictures, size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)


def test_lite0_exact_equals_full_on_photos_with_borders_and_an_uneven_stride(lite0):
    images = photos_at(lite0, 48)  # the engine follows the maps at any size; a small one keeps the test fast
    ours, full = both_paths(lite0, images, window=14, stride=11, score="logit")  # 48 - 14 = 34: the stride does not fit
    assert_maps_equal(ours, full)


@pytest.mark.slow
def test_lite0_exact_equals_full_at_224_px(lite0, photos):
    ours, full = both_paths(lite0, photos[:1], window=56, stride=24)
    assert_maps_equal(ours, full)


@pytest.mark.parametrize("build, size, window, stride", [(torchvision.models.resnet18, 48, 12, 10),
                                                         pytest.param(torchvision.models.vgg16, 32, 10, 11,
                                                                      marks=pytest.mark.slow),
                                                         (torchvision.models.mobilenet_v3_small, 64, 12, 10)])
def test_torchvision_networks_exact_equals_full(build, size, window, stride):
    torch.manual_seed(0)
    handle = zoo.wrap(build(num_classes=5).eval(), input_size=size)
    images = torch.rand(1 if build is torchvision.models.vgg16 else 2, 3, size, size)
    ours, full = both_paths(handle, images, window=window, stride=stride, fill="mean", score="logit")
    assert_maps_equal(ours, full)


@pytest.mark.parametrize("name", ["fashion_cnn", "tutorial_cnn", "lenet5",
                                  pytest.param("small_resnet", marks=pytest.mark.slow)])
def test_zoo_cnns_exact_equals_full(name):
    torch.manual_seed(0)
    handle = zoo.load(name, device="cpu") if name == "fashion_cnn" else zoo.load(name, device="cpu", weights=None)
    images = torch.rand(3, 1, 28, 28)
    ours, full = both_paths(handle, images, window=5, stride=3, fill="black")
    assert_maps_equal(ours, full)


def test_engine_rows_equal_forward_for_boxes_at_every_corner():
    torch.manual_seed(1)
    handle = zoo.wrap(torchvision.models.resnet18(num_classes=4).eval(), input_size=40)
    images = torch.rand(2, 3, 40, 40)
    engine = IncrementalForward.build(handle, images)
    image, top, left = torch.tensor([0, 1, 0, 1, 1]), torch.tensor([0, 0, 31, 31, 13]), torch.tensor([0, 31, 0, 31, 7])
    values = torch.rand(5, 3, 9, 9)
    changed = images[image].clone()
    for k in range(5):
        changed[k, :, top[k]:top[k] + 9, left[k]:left[k] + 9] = values[k]
    with torch.no_grad():
        torch.testing.assert_close(engine(image, top, left, values), handle(changed), atol=1e-5, rtol=1e-4)
    assert torch.equal(window_values(changed, torch.arange(5), top, left, 9, 9), values)


class RandomConvNet(nn.Module):
    """Two convs of drawn geometry with batch norm, a residual add, a pooling and a concatenation."""

    def __init__(self, kernel: int, stride: int, padding: int, dilation: int, groups: int, pool: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, kernel, stride, padding, dilation, groups=groups)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, groups=8)  # depthwise, same size: a residual add fits
        self.pool = {"max": nn.MaxPool2d(2, 2, 1), "avg": nn.AvgPool2d(3, 2, 1), "none": nn.Identity()}[pool]
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv1(x)))
        y = self.pool(torch.cat([y + self.conv2(y), y * 0.5], dim=1))
        return self.head(y.mean(dim=(2, 3)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=st.integers(1, 5), stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2),
       groups=st.sampled_from([1, 2, 4]), pool=st.sampled_from(["max", "avg", "none"]),
       size=st.integers(9, 20), box=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_incremental_equals_full_on_random_conv_nets(kernel, stride, padding, dilation, groups, pool, size, box, seed):
    assume((size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1 >= 2 and box <= size)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = RandomConvNet(kernel, stride, padding, dilation, groups, pool).eval()
    net.bn.running_mean.uniform_(-1, 1, generator=generator)
    net.bn.running_var.uniform_(0.5, 2, generator=generator)
    images = torch.rand(2, 4, size, size, generator=generator)
    image = torch.tensor([0, 1, 1])
    top = torch.randint(0, size - box + 1, (3,), generator=generator)
    left = torch.randint(0, size - box + 1, (3,), generator=generator)
    values = torch.rand(3, 4, box, box, generator=generator)
    changed = images[image].clone()
    for k in range(3):
        changed[k, :, top[k]:top[k] + box, left[k]:left[k] + box] = values[k]
    engine = IncrementalForward.build(net, images)
    with torch.no_grad():
        torch.testing.assert_close(engine(image, top, left, values), net(changed), atol=1e-5, rtol=1e-4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=st.integers(1, 5), stride=st.integers(1, 3), dilation=st.integers(1, 2), size=st.integers(7, 18),
       box=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_incremental_equals_full_on_same_padded_nets(kernel, stride, dilation, size, box, seed):
    """'SAME' convolutions, uneven paddings included, fold into the engine's graph and keep it exact."""
    assume(box <= size)
    torch.manual_seed(seed)
    net = nn.Sequential(Conv2dSame(3, 8, kernel, stride, dilation=dilation, bias=False), nn.BatchNorm2d(8),
                        nn.ReLU6(), Conv2dSame(8, 8, 3, 2, groups=8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 3)).eval()
    net[1].running_mean.uniform_(-1, 1)
    images = torch.rand(1, 3, size, size)
    top, left = torch.randint(0, size - box + 1, (2,)), torch.randint(0, size - box + 1, (2,))
    values = torch.rand(2, 3, box, box)
    changed = images.repeat(2, 1, 1, 1)
    for k in range(2):
        changed[k, :, top[k]:top[k] + box, left[k]:left[k] + box] = values[k]
    engine = IncrementalForward.build(net, images)
    assert sum(node.target is same_conv2d for node in engine.graph.graph.nodes) == 2
    with torch.no_grad():
        torch.testing.assert_close(engine(torch.zeros(2, dtype=torch.long), top, left, values), net(changed),
                                   atol=1e-5, rtol=1e-4)


def test_a_network_the_engine_cannot_follow_runs_in_full_with_one_line_saying_why():
    handle = zoo.wrap(nn.Sequential(Branchy(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(), input_size=12)
    images = torch.rand(1, 3, 12, 12)
    with pytest.warns(RuntimeWarning, match="cannot follow this network: torch.fx cannot trace Sequential"):
        ours = interpret.occlusion(handle, images, 0, window=4, incremental="exact")
    torch.testing.assert_close(ours, interpret.occlusion(handle, images, 0, window=4, incremental="off"))


def test_model_and_global_state_left_as_found_also_when_it_raises(tiny):
    images = torch.rand(2, 3, 16, 16)
    before, rng = state_snapshot(tiny), torch.get_rng_state()
    interpret.occlusion(tiny, images, [0, 1], window=5, stride=3, incremental="exact")
    interpret.occlusion(tiny, images, [0, 1], window=5, stride=3, incremental="approximate")
    with pytest.raises(zoo.CnnvizError):
        interpret.occlusion(tiny, images, ["ant", "yak"], window=5, incremental="exact")
    assert_unchanged(before, tiny)
    assert torch.equal(torch.get_rng_state(), rng)


def test_auto_measures_both_paths_then_keeps_the_faster(tiny):
    images = torch.rand(1, 3, 16, 16)
    calls = []

    def full(*row):
        calls.append("full")
        return tiny(images).expand(row[0].numel(), -1)

    rows = OcclusionRows(tiny, images, torch.zeros_like(images), 4, full, "auto")
    # eager on the CPU: 4 rows time the full pass, then one engine call of its own size, then the chosen path
    assert [s.stop - s.start for s in rows.spans(50)][:2] == [4, 32]
    arguments = two_occluded_rows()
    for _ in range(4):
        rows(*arguments)
    # eager on the CPU: the first call times the full pass, the second the engine, the rest take the faster
    assert calls[:1] == ["full"] and rows.path in ("exact", "full")
    assert len(calls) == 1 + 2 * (rows.path == "full")


def test_auto_warms_a_compiling_full_pass_up_before_timing_it(tiny):
    images = torch.rand(1, 3, 16, 16)
    handle = copy.copy(tiny)  # the same network, its own settings
    handle.compile_mode = "on"
    calls = []

    def full(*row):
        calls.append("full")
        return handle(images).expand(row[0].numel(), -1)

    rows = OcclusionRows(handle, images, torch.zeros_like(images), 4, full, "auto", batch_size=2)
    # warm-up, the full pass timed, the engine timed at its own batch (32 rows, here the 6 left)
    assert [s.stop - s.start for s in rows.spans(10)] == [2, 2, 6]
    arguments = two_occluded_rows()
    assert rows.path == "measuring"
    for _ in range(3):
        rows(*arguments)
    assert calls == ["full", "full"] and rows.path in ("exact", "full")  # the third call ran the engine


def test_bf16_exact_follows_the_bf16_full_pass():
    torch.manual_seed(0)
    handle = zoo.wrap(torchvision.models.resnet18(num_classes=5).eval(), input_size=32)
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        largest_logit = handle(images).abs().max()
    handle.precision = "bf16"
    ours, full = both_paths(handle, images, window=8, stride=6, score="logit")
    # bf16 keeps 8 bits of mantissa, and the two paths round in different places: a few units of the
    # logits' last place apart, never more.
    assert (ours - full).abs().max() <= 4 * 2 ** -8 * largest_logit



@pytest.mark.parametrize("side, kernel, stride, dilation, padding", [
    (14, 5, 2, 1, (1, 2, 1, 2)), (224, 3, 2, 1, (0, 1, 0, 1)), (15, 3, 3, 2, (2, 0, 0, 3)), (9, 1, 2, 1, (0, 1, 1, 0))])
def test_padded_conv2d_equals_padding_then_convolving(side, kernel, stride, dilation, padding):
    x, weight, bias = torch.randn(2, 4, side, side + 1), torch.randn(6, 2, kernel, kernel), torch.randn(6)
    top, bottom, left, right = padding
    expected = nn.functional.conv2d(nn.functional.pad(x, (left, right, top, bottom)), weight, bias, stride, 0,
                                    dilation, 2)
    torch.testing.assert_close(padded_conv2d(x, weight, bias, stride, padding, dilation, 2), expected,
                               atol=1e-5, rtol=1e-5)


def test_folding_keeps_the_function_and_leaves_the_model_alone(lite0):
    images = photos_at(lite0, 40)
    graph = torch.fx.symbolic_trace(lite0.model)
    before = state_snapshot(lite0.model)
    with torch.no_grad():
        expected = lite0.model(images)
        folded = fold(torch.fx.GraphModule(graph, copy.deepcopy(graph.graph)))
        torch.testing.assert_close(folded(images), expected, atol=1e-4, rtol=1e-4)
    assert not [node for node in folded.graph.nodes if node.target is pad_same]
    assert len([node for node in folded.graph.nodes if node.target is same_conv2d]) == 49  # each of lite0's convolutions pads 'SAME'
    assert all(node.users for node in folded.graph.nodes if node.op == "get_attr")
    assert not any(isinstance(folded.get_submodule(n.target), nn.BatchNorm2d)
                   for n in folded.graph.nodes if n.op == "call_module")
    assert_unchanged(before, lite0.model)


def test_the_kept_graph_is_made_again_when_the_model_changes():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=4).eval()
    handle = zoo.wrap(net, input_size=32)
    images = torch.rand(1, 3, 32, 32)
    first = engine_graph(net, folded=True)[0]
    assert engine_graph(net, folded=True)[0] is first  # kept while nothing changed
    with torch.no_grad():
        net.layer1[0].conv1.weight.mul_(-1)  # in place: the same tensor, new values
    assert engine_graph(net, folded=True)[0] is not first
    ours, full = both_paths(handle, images, window=8, stride=8, score="logit")
    assert torch.allclose(ours, full, atol=1e-4 * float(full.max() - full.min()))
    kept = engine_graph(net, folded=True)[0]
    net.layer4 = nn.Sequential()  # a module replaced: the layout changed, and the classifier now reads 256 channels
    net.fc = nn.Linear(256, 4)
    assert engine_graph(net, folded=True)[0] is not kept
    ours, full = both_paths(handle, images, window=8, stride=8, score="logit")
    assert torch.allclose(ours, full, atol=1e-4 * float(full.max() - full.min()))
    kept = engine_graph(net, folded=True)[0]
    net.layer1[0].bn1.train()  # a batch norm in training mode must not be folded
    assert engine_graph(net, folded=True)[0] is not kept
    net.eval()


def test_the_kept_graph_goes_with_its_model():
    import gc
    import weakref

    net = torchvision.models.resnet18(num_classes=4).eval()
    engine_graph(net, folded=True)
    alive = weakref.ref(net)
    del net
    gc.collect()
    assert alive() is None


def test_the_deep_layers_run_in_groups_of_rows_with_the_same_logits(lite0):
    images = photos_at(lite0, 64)
    engine = IncrementalForward.build(lite0, images)
    count = 11
    image = torch.arange(count) % 2
    top, left = torch.arange(count) * 4, torch.arange(count).flip(0) * 4
    values = torch.rand(count, 3, 12, 12)
    engine.tail_rows = count  # no groups: every row through every layer together
    together = engine(image, top, left, values)
    engine.tail_rows = 3  # four near-equal groups of rows once every box covers its map
    grouped = engine(image, top, left, values)
    assert engine.tail_from is not None and 0 < engine.tail_from < len(engine.plan.nodes) - 2  # split before the head
    assert torch.allclose(grouped, together, atol=1e-5)
    changed = images[image].clone()
    for k in range(count):
        changed[k, :, top[k]:top[k] + 12, left[k]:left[k] + 12] = values[k]
    assert torch.allclose(grouped, lite0(changed), atol=1e-4)
