"""LRP canonized from the traced graph: relevance sums to the logit on residual, gated, concatenating and
layer-normalized CNNs (biases zeroed, batch norms as identity), equals hand-computed LRP on tiny nets, and what has
no rule is refused in one line."""

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz import interpret, zoo
from cnnviz.interpret.attribution.canonize import canonized
from cnnviz.zoo.core import CnnvizError
from tests.conftest import assert_unchanged, state_snapshot

NORMALIZE = {"mean": (0.5,) * 3, "std": (0.25,) * 3}


@torch.no_grad()
def without_shifts(model: nn.Module, seed: int = 0) -> nn.Module:
    """Biases zeroed, batch norms the identity, so a conserving composite must give the logit back.

    Convolutions and dense layers are drawn again with He's fan-in scale: torchvision's fan-out init leaves the
    logits of the deep gated nets (EfficientNet, MobileNet v3, GoogLeNet) near 1e-12, where no ratio means anything.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, generator=generator)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.zero_(), module.running_var.fill_(1.0), module.weight.fill_(1.0)
            module.eps = 0.0
        for name, parameter in module.named_parameters(recurse=False):
            if name == "bias":
                parameter.zero_()
    return model.eval()


def relevance_over_logit(model: nn.Module, size: int, composite: str = "epsilon_gamma_box", std: float = 0.25) -> float:
    """Sum of the input relevance / the logit of the class with the largest logit, for one random image."""
    handle = zoo.wrap(model, input_size=size, name="net", mean=(0.5,) * 3, std=(std,) * 3)
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = handle(images)
    target = int(logits.argmax())
    before = state_snapshot(handle)
    relevance = interpret.lrp(handle, images, target, composite=composite)
    assert_unchanged(before, handle)
    return float(relevance.sum() / logits[0, target])


class ResidualNet(nn.Module):
    """A user's own residual net: ``relu(x + conv(x))`` blocks written in the forward."""

    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.convs = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(blocks))
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        for conv in self.convs:
            x = torch.relu(x + conv(x))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("blocks", [1, 3, 5])
@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_a_users_residual_net_conserves_relevance(blocks, composite):
    torch.manual_seed(blocks)
    assert relevance_over_logit(without_shifts(ResidualNet(blocks)), 16, composite) == pytest.approx(1, rel=1e-3)


FAST = ["efficientnet_b0", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny", "densenet121", "resnet18",
        "shufflenet_v2_x0_5", "squeezenet1_0", "mobilenet_v3_small", "mnasnet0_5", "googlenet"]
SLOW = ["efficientnet_b1", "vgg16", "regnet_x_800mf", "convnext_small", "alexnet", "vgg11_bn", "resnet50",
        "resnext50_32x4d", "wide_resnet50_2", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_v2_s",
        "shufflenet_v2_x1_0", "densenet161", "regnet_y_800mf"]


@pytest.mark.parametrize("name", FAST + [pytest.param(name, marks=pytest.mark.slow) for name in SLOW])
def test_torchvision_classification_cnns_conserve_relevance_and_keep_their_logits(name):
    torch.manual_seed(0)
    assert_canonized_and_conserving(without_shifts(getattr(torchvision.models, name)()), name)


def assert_canonized_and_conserving(model: torch.nn.Module, name: str) -> None:
    """The canonized model gives the same logits, and LRP's relevance adds up to the logit."""
    inputs = torch.randn(1, 3, 80, 80)
    with torch.no_grad():
        logits = model(inputs)
        torch.testing.assert_close(canonized(model)(inputs), logits, atol=1e-4 * logits.abs().max(), rtol=1e-4)
    # Random EfficientNets shrink their activations stage by stage (logit 1e-3), down to where the rules' 1e-6
    # stabilizers take 0.5% of the relevance: their inputs are scaled 12.5x (std 0.02), which keeps them above.
    std = 0.02 if name.startswith("efficientnet") else 0.25
    assert relevance_over_logit(model, 80, std=std) == pytest.approx(1, rel=1e-3)


TIMM = ["regnety_002", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_050", "densenet121"]


@pytest.mark.parametrize("name", TIMM)
def test_timm_cnns_conserve_relevance_and_keep_their_logits(name):
    # timm's own batch norms with activations, hard-sigmoid gates, LayerNorm2d, heads steered by pre_logits=False
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    assert_canonized_and_conserving(without_shifts(timm.create_model(name, pretrained=False)), name)


@pytest.mark.parametrize("name", ["fashion_cnn", "tutorial_cnn", "lenet5", "small_resnet"])
def test_the_zoos_cnns_conserve_relevance(name):  # its torchvision ones are tested above, lite0 in test_lrp.py
    handle = zoo.load(name, device="cpu", **({} if name == "fashion_cnn" else {"weights": None}))
    model = without_shifts(handle.model)
    size, channels = handle.input_size, handle.in_channels
    wrapped = zoo.wrap(model, input_size=size, name=name, mean=(0.5,) * channels, std=(0.25,) * channels)
    images = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = wrapped(images)
    target = int(logits.argmax())
    relevance = interpret.lrp(wrapped, images, target)
    assert float(relevance.sum() / logits[0, target]) == pytest.approx(1, rel=1e-3)


class Block(nn.Module):
    """One drawn block: a residual add, a squeeze-excitation gate, a concatenation, layer scale or a GroupNorm."""

    def __init__(self, kind: str, width: int) -> None:
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.squeeze = nn.Linear(width, width)
        self.scale = nn.Parameter(torch.rand(width, 1, 1) + 0.5)
        self.norm = nn.GroupNorm(2, width)
        self.merge = nn.Conv2d(2 * width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        if self.kind == "residual":
            return x + y
        if self.kind == "gate":
            return y * torch.sigmoid(self.squeeze(y.mean((2, 3))))[:, :, None, None]
        if self.kind == "concat":
            return self.merge(torch.cat([x, y], dim=1))
        if self.kind == "layer_scale":
            return x + self.scale * y
        return torch.relu(self.norm(y))


class DrawnNet(nn.Module):
    def __init__(self, kinds: list[str], width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(*[Block(kind, width) for kind in kinds])
        self.fc = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(["residual", "gate", "concat", "layer_scale", "group_norm"]), min_size=1,
                      max_size=5),
       width=st.sampled_from([4, 6]), seed=st.integers(0, 100))
def test_random_residual_gated_and_concatenating_nets_conserve_relevance(kinds, width, seed):
    torch.manual_seed(seed)
    ratio = relevance_over_logit(without_shifts(DrawnNet(kinds, width), seed), 8)
    assert ratio == pytest.approx(1, rel=1e-3), kinds


def test_lrp_on_a_tiny_residual_net_is_lrp0_by_hand():
    # x -> h = W1 x; s = x + h; out = w2 . relu(s). LRP-0 (epsilon 1e-6 on every dense layer): R_a = w2 * a,
    # the sum splits R_s in proportion x : h, and W1 passes R_h back by z-rule.
    torch.manual_seed(0)
    first, last = nn.Linear(3, 3, bias=False), nn.Linear(3, 1, bias=False)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.last = first, last

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.flatten(1)
            return self.last(torch.relu(x + self.first(x)))

    handle = zoo.wrap(Tiny().eval(), input_size=1, **NORMALIZE)
    images = torch.rand(1, 3, 1, 1, generator=torch.Generator().manual_seed(4))
    x = ((images - 0.5) / 0.25).flatten()
    w1, w2 = first.weight.detach(), last.weight.detach()[0]
    h = w1 @ x
    s = x + h
    relevance_s = w2 * torch.relu(s)
    expected = x / s * relevance_s + x * (w1.T @ (h / s * relevance_s / h))
    relevance = interpret.lrp(handle, images, 0, composite="epsilon_alpha2_beta1", channels=True)
    torch.testing.assert_close(relevance.flatten(), expected, atol=1e-5, rtol=1e-4)


def test_lrp_on_a_tiny_gated_net_treats_the_gate_as_a_constant_by_hand():
    # y = (W1 x) * sigmoid(W2 x); out = w3 . y. The gate is a constant: R_h = R_y = w3 * y, nothing reaches W2.
    torch.manual_seed(1)
    signal, gate, last = nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False), nn.Linear(3, 1, bias=False)

    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.signal, self.gate, self.last = signal, gate, last

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.flatten(1)
            return self.last(self.signal(x) * torch.sigmoid(self.gate(x)))

    handle = zoo.wrap(Gated().eval(), input_size=1, **NORMALIZE)
    images = torch.rand(1, 3, 1, 1, generator=torch.Generator().manual_seed(5))
    x = ((images - 0.5) / 0.25).flatten()
    h = signal.weight.detach() @ x
    y = h * torch.sigmoid(gate.weight.detach() @ x)
    relevance_y = last.weight.detach()[0] * y
    expected = x * (signal.weight.detach().T @ (relevance_y / h))
    relevance = interpret.lrp(handle, images, 0, composite="epsilon_alpha2_beta1", channels=True)
    torch.testing.assert_close(relevance.flatten(), expected, atol=1e-5, rtol=1e-4)
    assert float(relevance.sum()) == pytest.approx(float(relevance_y.sum()), rel=1e-4)


class NormAfterActivation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.act(self.conv(x))).mean((2, 3)))


def test_a_batch_norm_no_layer_can_absorb_gets_its_affine_rule_and_keeps_the_logits():
    torch.manual_seed(0)
    model = without_shifts(NormAfterActivation())
    with torch.no_grad():
        model.norm.running_var.uniform_(0.5, 2.0), model.norm.weight.uniform_(0.5, 2.0)  # a real scale, no shift
    inputs = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(canonized(model)(inputs), model(inputs))
    assert relevance_over_logit(model, 8) == pytest.approx(1, rel=1e-3)


def test_concepts_use_the_same_canonization_and_conserve_on_a_gated_net():
    torch.manual_seed(0)
    handle = zoo.wrap(without_shifts(torchvision.models.regnet_y_400mf()), input_size=64, **NORMALIZE)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = handle(images)
    target = int(logits.argmax())
    found = interpret.concept_relevance(handle, images, target, layer="trunk_output.block2", channels=2)
    assert float(found.total.sum() / logits[0, target]) == pytest.approx(1, rel=1e-3)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.mean((2, 3)) if y.sum() > 0 else -y.mean((2, 3))


def test_a_forward_that_cannot_be_traced_is_refused_in_one_line_naming_the_module():
    handle = zoo.wrap(Untraceable(), input_size=8)
    before = state_snapshot(handle)
    with pytest.raises(CnnvizError, match=r"cannot trace the forward of the model \(Untraceable\)") as error:
        interpret.lrp(handle, torch.rand(1, 3, 8, 8), 0)
    assert "\n" not in str(error.value)
    assert_unchanged(before, handle)


def test_atlas_by_relevance_ranks_with_the_same_relevance_as_the_concepts():
    torch.manual_seed(0)
    handle = zoo.wrap(without_shifts(torchvision.models.regnet_y_400mf()), input_size=64, **NORMALIZE)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    target = int(handle(images).argmax())
    found = interpret.concept_relevance(handle, images, target, layer="trunk_output.block2", channels=3)
    shares, _ = interpret.relevance_ranking(handle, "trunk_output.block2", target)(images)
    torch.testing.assert_close(shares[0, found.channels[0]], found.shares[0], rtol=1e-4, atol=1e-6)
