"""The compiled forward fast path: equal to eager, compiled only when it pays, never harmful.

Tolerance: the compiled and eager paths differ by float rounding only (inductor fuses and reorders
the same fp32 arithmetic), so maps agree to 1e-4 of their range and rank-correlate at >= 0.999.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.evaluate.faithfulness import deletion_insertion
from cnnviz.interpret.inside.atlas.scan import neuron_atlas
from cnnviz.interpret.inside.up_to_layer import layer_prefix
from cnnviz.zoo.data import TensorImages
from cnnviz.zoo.handle import ForwardRunner, ModelHandle
from cnnviz.zoo.handle.compiled import CompileCost, CompileCosts, should_compile, signature


class SmallNet(nn.Module):
    """Conv, batch norm, ReLU, a residual add, pooling and a classifier: what inductor fuses in real CNNs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def small() -> ModelHandle:
    torch.manual_seed(0)
    net = SmallNet()
    for bn in (net.stem[1], net.block[1]):  # non-trivial statistics, so batch norm really computes
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return zoo.wrap(net.eval(), input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="small",
                    default_layer="stem")


@pytest.fixture(scope="module")
def pictures() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def with_mode(handle: ModelHandle, mode: str) -> ModelHandle:
    copied = copy.deepcopy(handle)
    copied.compile_mode = mode
    return copied


def assert_same_maps(eager: torch.Tensor, compiled: torch.Tensor) -> None:
    span = float(eager.max() - eager.min())
    assert (compiled - eager).abs().max() <= 1e-4 * span + 1e-7
    for e, c in zip(eager, compiled):
        assert spearmanr(e.flatten().numpy(), c.flatten().numpy()).statistic >= 0.999


METHODS = {
    "occlusion": lambda h, x: interpret.occlusion(h, x, 1, window=8, stride=3, batch_size=16),
    "rise": lambda h, x: interpret.rise(h, x, 1, masks=40, seed=0, batch_size=16),
    "scorecam": lambda h, x: interpret.scorecam(h, x, 1, layer="stem", batch_size=16),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_compiled_maps_equal_eager(small: ModelHandle, pictures: torch.Tensor, name: str) -> None:
    eager = METHODS[name](with_mode(small, "off"), pictures)
    compiled_handle = with_mode(small, "on")
    compiled = METHODS[name](compiled_handle, pictures)
    assert any(part == "logits" for part, _ in compiled_handle.compiled)  # the compiled path really ran
    assert_same_maps(eager, compiled)


def test_compiled_deletion_insertion_equal_eager(small: ModelHandle, pictures: torch.Tensor) -> None:
    maps = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    eager = deletion_insertion(with_mode(small, "off"), pictures, maps, 1, steps=20, batch_size=16)
    compiled = deletion_insertion(with_mode(small, "on"), pictures, maps, 1, steps=20, batch_size=16)
    torch.testing.assert_close(compiled.deletion, eager.deletion, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(compiled.insertion, eager.insertion, atol=1e-5, rtol=1e-4)


def test_compiled_path_leaves_model_and_handle_alone(small: ModelHandle, pictures: torch.Tensor) -> None:
    handle = with_mode(small, "on")
    before = {k: v.clone() for k, v in handle.state_dict().items()}
    modules = [name for name, _ in handle.named_modules()]
    modes = [m.training for m in handle.modules()]
    interpret.occlusion(handle, pictures, 1, window=8, stride=3, batch_size=16)
    assert [name for name, _ in handle.named_modules()] == modules  # the compiled wrapper is no submodule
    assert all(torch.equal(before[k], v) for k, v in handle.state_dict().items())
    assert [m.training for m in handle.modules()] == modes
    assert all(p.requires_grad for p in handle.model.parameters())
    assert copy.deepcopy(handle).compiled == {}  # a copy starts without the original's compiled forward


def test_short_chunks_are_padded_to_one_shape(small: ModelHandle, pictures: torch.Tensor, tmp_path) -> None:
    runner = ForwardRunner(with_mode(small, "on"), rows=7, batch_size=4, costs=CompileCosts(tmp_path / "c.json"))
    with torch.no_grad():
        full, short = runner(pictures.repeat(2, 1, 1, 1)), runner(pictures[:1].repeat(3, 1, 1, 1))
        eager = small(pictures)
    assert full.shape == (4, 5) and short.shape == (3, 5)
    torch.testing.assert_close(short[0], eager[0], atol=1e-5, rtol=1e-4)
    record = CompileCosts(tmp_path / "c.json").get(signature(runner.handle, (4, 3, 32, 32), "logits"))
    assert record is not None and record.compile_seconds > 0 and record.compiled_row_seconds > 0
    again = ForwardRunner(with_mode(small, "on"), rows=4, batch_size=4, costs=CompileCosts(tmp_path / "c.json"))
    with torch.no_grad():
        again(pictures.repeat(2, 1, 1, 1))  # a new handle compiles again, now from inductor's warm cache
    assert CompileCosts(tmp_path / "c.json").get(signature(runner.handle, (4, 3, 32, 32), "logits")).warm


def test_should_compile_weighs_saving_against_measured_cost() -> None:
    fast = CompileCost(compile_seconds=4.0, eager_row_seconds=0.02, compiled_row_seconds=0.01)
    assert should_compile(rows_left=3000, eager_row_seconds=0.02, cost=fast)  # saves 30 s for 4 s
    assert not should_compile(rows_left=100, eager_row_seconds=0.02, cost=fast)  # saves 1 s
    # nothing measured yet: a cold compile (40 s) at a modest speedup must be repaid
    assert not should_compile(rows_left=3000, eager_row_seconds=0.02, cost=None)
    assert should_compile(rows_left=100_000, eager_row_seconds=0.02, cost=None)
    cold = CompileCost(compile_seconds=40.0, eager_row_seconds=0.02, compiled_row_seconds=0.01, warm=False)
    assert cold.next_compile_seconds < 40.0  # that compile filled the cache: the next one is cheaper
    assert should_compile(rows_left=3000, eager_row_seconds=0.02, cost=cold)
    slower = CompileCost(compile_seconds=0.1, eager_row_seconds=0.01, compiled_row_seconds=0.02)
    assert not should_compile(rows_left=10**6, eager_row_seconds=0.01, cost=slower)


def test_auto_decides_after_timing_an_eager_chunk(small: ModelHandle, pictures: torch.Tensor, tmp_path) -> None:
    costs = CompileCosts(tmp_path / "costs.json")
    batch = pictures.repeat(2, 1, 1, 1)
    key = signature(small, tuple(batch.shape), "logits")
    costs.put(key, CompileCost(compile_seconds=1e6, eager_row_seconds=1.0, compiled_row_seconds=0.5))
    dear = ForwardRunner(with_mode(small, "auto"), rows=40, batch_size=4, costs=costs)
    with torch.no_grad():
        for _ in range(3):
            dear(batch)
    assert not dear.using_compiled and dear.eager_row_seconds is not None
    costs.put(key, CompileCost(compile_seconds=0.0, eager_row_seconds=1.0, compiled_row_seconds=0.5))
    cheap = ForwardRunner(with_mode(small, "auto"), rows=40, batch_size=4, costs=costs)
    with torch.no_grad():
        outputs = [cheap(batch) for _ in range(3)]
    assert cheap.using_compiled
    torch.testing.assert_close(outputs[2], outputs[0], atol=1e-5, rtol=1e-4)


def test_a_failing_compiler_falls_back_or_explains(small: ModelHandle, pictures: torch.Tensor, tmp_path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The one mock here: a compiler that breaks (no C++ toolchain, an untraceable model) cannot be had for real.
    def broken_compile(fn, **kwargs):
        def run(x):
            raise RuntimeError("inductor: no working C++ compiler\nlong details")
        return run
    monkeypatch.setattr(torch, "compile", broken_compile)
    costs = CompileCosts(tmp_path / "c.json")
    with pytest.raises(zoo.CnnvizError, match="torch.compile failed on small: inductor: no working C"):
        with torch.no_grad():
            ForwardRunner(with_mode(small, "on"), rows=4, batch_size=2, costs=costs)(pictures)
    costs.put(signature(small, tuple(pictures.shape), "logits"), CompileCost(0.0, 1.0, 0.5))  # "free": auto compiles
    auto = ForwardRunner(with_mode(small, "auto"), rows=8, batch_size=2, costs=costs)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        outputs = [auto(pictures) for _ in range(3)]  # eager, eager and timed, then the compile that fails
    assert any("running eagerly" in str(w.message) for w in caught) and not auto.using_compiled
    torch.testing.assert_close(outputs[2], small(pictures).detach())


def test_unknown_compile_mode_is_one_line(small: ModelHandle) -> None:
    with pytest.raises(zoo.CnnvizError, match="unknown compile mode 'fast': choose from auto, on, off"):
        with_mode(small, "fast")


class Branchy(nn.Module):
    """Control flow on the data: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if x.mean() > 0 else -x


def test_layer_prefix_equals_the_early_stopping_pass_or_declines(small: ModelHandle, pictures: torch.Tensor) -> None:
    modules = [name for name, _ in small.named_modules()]
    for layer in ("stem", "stem.2", "block", "head"):
        prefix = layer_prefix(small, layer)
        assert [name for name, _ in small.named_modules()] == modules  # the network is not cut, only traced
        assert prefix is not None
        with torch.no_grad():
            torch.testing.assert_close(prefix(pictures), layer_output(small, layer, pictures), atol=1e-6, rtol=1e-5)
    assert layer_prefix(zoo.wrap(Branchy().eval(), input_size=8), "conv") is None


def test_compiled_atlas_equals_eager(small: ModelHandle) -> None:
    pixels = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    data = TensorImages(pixels)
    eager = neuron_atlas(with_mode(small, "off"), "stem", data, top=3, batch_size=16, workers=0, progress=False)
    handle = with_mode(small, "on")
    compiled = neuron_atlas(handle, "stem", data, top=3, batch_size=16, workers=0, progress=False)
    assert any(part.startswith("layer stem") for part, _ in handle.compiled)
    assert torch.equal(compiled.top_indices, eager.top_indices)
    assert torch.equal(compiled.top_positions, eager.top_positions)
    torch.testing.assert_close(compiled.top_values, eager.top_values, atol=1e-5, rtol=1e-5)
