"""LRP: equal to zennit's own attributor, conserving where the rules conserve, LRP-0 = gradient x input by hand,
canonizing (batch norm folded on a copy) changes no logit and leaves the user's model alone."""

import copy
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.canonize import canonized
from cnnviz.interpret.attribution.lrp import COMPOSITES
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.models.cnns import SmallResNet
from cnnviz.zoo.models import EfficientNetLite, VARIANTS
from cnnviz.zoo.core import CnnvizError


def seeded_batch_norms(model: nn.Module, seed: int = 0, *, neutral_shift: bool = False) -> nn.Module:
    """Give every batch norm running statistics and affine parameters worth folding (as after training).

    ``neutral_shift``: zero means and shifts, so the folded network has no biases and LRP must conserve.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
                module.weight.copy_(0.5 + torch.rand(size, generator=generator))
                if neutral_shift:
                    module.running_mean.zero_(), module.bias.zero_()
                else:
                    module.running_mean.copy_(0.2 * torch.randn(size, generator=generator))
                    module.bias.copy_(0.1 * torch.randn(size, generator=generator))
    return model.eval()


IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@pytest.fixture(scope="module")
def resnet18() -> zoo.ModelHandle:
    torch.manual_seed(0)
    return zoo.wrap(seeded_batch_norms(torchvision.models.resnet18()), input_size=64, name="resnet18", **IMAGENET)


@pytest.fixture(scope="module")
def vgg16() -> zoo.ModelHandle:
    torch.manual_seed(0)
    return zoo.wrap(torchvision.models.vgg16().eval(), input_size=32, name="vgg16", **IMAGENET)


def zennit_reference(handle: zoo.ModelHandle, images: torch.Tensor, target: list[int], composite: str) -> torch.Tensor:
    """zennit's Gradient attributor on the user's model, with zennit's own canonizer, from the target logit."""
    from zennit.attribution import Gradient
    from zennit.composites import COMPOSITES as ZENNIT
    from zennit.composites import EpsilonGammaBox
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    canonizer = ResNetCanonizer() if "resnet" in handle.name else VGGCanonizer()
    inputs = (images - handle.mean) / handle.std
    if composite == "epsilon_gamma_box":
        rules = EpsilonGammaBox(low=-handle.mean / handle.std, high=(1 - handle.mean) / handle.std,
                                canonizers=[canonizer])
    else:
        rules = ZENNIT[composite](canonizers=[canonizer])
    onehot = torch.eye(1000)[target]
    with Gradient(handle.model, rules) as attributor:
        _, relevance = attributor(inputs, lambda out: out * onehot)
    return relevance


ORACLE_CASES = [("resnet18", c) for c in COMPOSITES] + [
    pytest.param("vgg16", c, marks=pytest.mark.slow) for c in COMPOSITES]  # 138 M weights: ~12 s each


@pytest.mark.parametrize("model, composite", ORACLE_CASES)
def test_lrp_equals_zennits_attributor_with_the_same_composite_and_canonizer(request, model, composite):
    handle = request.getfixturevalue(model)
    images = torch.rand(2, 3, handle.input_size, handle.input_size, generator=torch.Generator().manual_seed(1))
    before = state_snapshot(handle)
    ours = interpret.lrp(handle, images, [3, 7], composite=composite, channels=True)
    assert_unchanged(before, handle)
    reference = zennit_reference(handle, images, [3, 7], composite)
    assert_unchanged(before, handle)  # zennit's canonizer restores the model too, so both runs saw the same one
    scale = reference.abs().max()
    assert scale > 0
    torch.testing.assert_close(ours, reference, atol=1e-4 * scale, rtol=1e-3)


def lrp0_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False)).eval()


def test_lrp0_on_a_bias_free_relu_net_is_gradient_times_input_by_hand():
    # Only dense layers: epsilon_alpha2_beta1 puts the epsilon rule (epsilon 1e-6, i.e. LRP-0) on every one
    # (the other two give the first layer the flat or z-box rule).
    net = lrp0_net()
    handle = zoo.wrap(net, input_size=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    x = ((images - 0.5) / 0.25).flatten(1)
    w1, w2 = net[1].weight.detach(), net[3].weight.detach()
    target = 2
    active = (x @ w1.T > 0).float()                      # which hidden ReLUs pass
    gradient = (w2[target] * active) @ w1                 # d logit / d x, by the chain rule
    expected = (gradient * x).view(4, 3, 2, 2)
    relevance = interpret.lrp(handle, images, target, composite="epsilon_alpha2_beta1", channels=True)
    torch.testing.assert_close(relevance, expected, atol=1e-5, rtol=1e-4)


class BiasFreeCNN(nn.Module):
    """conv -> BN -> ReLU6 -> conv -> BN -> ReLU, a residual block, average pooling, dense: no bias anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, 8, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(8), act1=nn.ReLU6(),
            conv2=nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), bn2=nn.BatchNorm2d(8), act2=nn.ReLU()))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def bias_free_handles() -> list[zoo.ModelHandle]:
    """A plain CNN, the zoo's SmallResNet and lite0's real convolutions, each without a bias once folded."""
    torch.manual_seed(0)
    small_resnet = seeded_batch_norms(SmallResNet(in_channels=3, num_classes=4, widths=(8, 16, 16), blocks=1),
                                      neutral_shift=True)
    lite = EfficientNetLite(VARIANTS["efficientnet_lite0"])
    lite.load_state_dict(zoo.load("efficientnet_lite0", device="cpu").model.state_dict())
    with torch.no_grad():
        for module in lite.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.zero_(), module.bias.zero_()
        lite.classifier.bias.zero_()
    return [zoo.wrap(seeded_batch_norms(BiasFreeCNN(), neutral_shift=True), input_size=16, name="cnn", **IMAGENET),
            zoo.wrap(small_resnet, input_size=16, name="small_resnet", **IMAGENET),
            zoo.wrap(lite.eval(), input_size=64, name="lite0_without_shifts", mean=(0.5,) * 3, std=(0.5,) * 3)]


def conservation_gaps(handle: zoo.ModelHandle, composite: str) -> torch.Tensor:
    """|sum of input relevance - target logit| / |target logit| per image."""
    images = torch.rand(3, 3, handle.input_size, handle.input_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = handle(images)
    target = logits.argmax(-1)
    relevance = interpret.lrp(handle, images, target.tolist(), composite=composite)
    chosen = logits.gather(1, target[:, None])[:, 0]
    return (relevance.sum((1, 2, 3)) - chosen).abs() / chosen.abs()


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_relevance_sums_to_the_target_logit_where_the_rules_conserve(composite):
    # Bias-free after folding (batch norms with zero mean and shift), so z+, gamma, flat and z-box conserve up to
    # their stabilizers: within 1e-3 of the logit (lite0: 5e-5). The random 8-channel SmallResNet loses up to 1.1%
    # under z+, which drops the relevance of a unit whose inputs under positive weights are all zero. alpha2-beta1
    # does not conserve where a unit has no negative input (it passes on 2R): on lite0 the sum is 13x the logit.
    tolerance = {"cnn": 1e-3, "small_resnet": 2e-2, "lite0_without_shifts": 1e-3}
    for handle in bias_free_handles():
        gaps = conservation_gaps(handle, composite)
        assert (gaps < tolerance[handle.name]).all(), f"{handle.name}: relevance off the logit by {gaps.tolist()}"


def test_without_the_residual_sums_relevance_would_not_be_conserved(monkeypatch):
    # The check above has teeth: with the residual additions left as `x + y`, the skips get the relevance twice.
    import operator

    from cnnviz.interpret.attribution import relevance_graph

    monkeypatch.setattr(relevance_graph, "tensor_sum", operator.add)
    for handle in bias_free_handles()[1:]:
        assert (conservation_gaps(handle, "epsilon_gamma_box") > 0.1).all(), handle.name


def assert_same_logits_after_canonizing(handles: list[zoo.ModelHandle]) -> None:
    """float32: within 1e-5 of the largest logit (the fold reorders the rounding of 20-60 layers)."""
    for handle in handles:
        images = torch.rand(2, handle.in_channels, handle.input_size, handle.input_size)
        inputs = (images - handle.mean) / handle.std
        with torch.no_grad():
            before = state_snapshot(handle)
            copy = canonized(handle.model)
            assert_unchanged(before, handle)
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in copy.modules())
            logits = handle.model(inputs)
            assert (copy(inputs) - logits).abs().max() <= 1e-5 * logits.abs().max(), handle.name


def test_canonizing_changes_no_logit_on_the_shipped_and_torchvision_models(lite0, resnet18):
    assert_same_logits_after_canonizing([lite0, resnet18, zoo.load("fashion_cnn", device="cpu"), *bias_free_handles()])
    with torch.no_grad():  # float64: within 1e-10, so the fold itself is exact
        double = resnet18.model.double()
        try:
            inputs = torch.randn(2, 3, 64, 64, dtype=torch.float64)
            torch.testing.assert_close(canonized(double)(inputs), double(inputs), atol=1e-10, rtol=0)
        finally:
            resnet18.model.float()


@pytest.mark.slow  # 132 M weights
def test_canonizing_changes_no_logit_on_vgg_with_batch_norm():
    torch.manual_seed(0)
    vgg = seeded_batch_norms(torchvision.models.vgg11_bn())
    assert_same_logits_after_canonizing([zoo.wrap(vgg, input_size=32, name="vgg11_bn", **IMAGENET)])


class Bilinear(nn.Module):
    """A product of two signals, neither of them a gate: no LRP rule splits it."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.left(x) * self.right(x)).mean((2, 3)))


def test_a_graph_that_cannot_be_canonized_is_refused_in_one_line_naming_the_layer():
    # A batch norm after an activation used to be refused here; it now gets its affine rule (test_lrp_graph.py).
    handle = zoo.wrap(Bilinear().train(), input_size=8)
    before = state_snapshot(handle)
    with pytest.raises(CnnvizError, match=r"through mul at node 'mul' in the model \(Bilinear\)") as error:
        interpret.lrp(handle, torch.rand(1, 3, 8, 8), 0)
    assert "\n" not in str(error.value)
    assert_unchanged(before, handle)


def test_an_unknown_composite_is_one_line_from_python_and_exit_2_from_the_cli(capsys):
    handle = zoo.wrap(BiasFreeCNN(), input_size=16)
    with pytest.raises(CnnvizError, match="unknown composite 'epsilon'.*epsilon_plus_flat"):
        interpret.lrp(handle, torch.rand(1, 3, 16, 16), 0, composite="epsilon")
    from cnnviz.cli.main import main

    with pytest.raises(SystemExit) as code:  # argparse refuses a choice outside the Literal
        main(["explain", "lrp", "--image", "chelsea", "--composite", "nope"])
    assert code.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_lrp_on_lite0_leaves_the_model_exactly_as_found(lite0, photos):
    before = state_snapshot(lite0)
    relevance = interpret.lrp(lite0, photos[:1], "tiger cat", composite="epsilon_gamma_box")
    assert_unchanged(before, lite0)
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0


def test_the_canonized_copy_is_made_once_and_again_only_after_the_weights_or_structure_change(monkeypatch):
    from cnnviz.interpret.attribution import canonize

    made = []

    def counting(model):  # the real canonizer, counted
        made.append(model)
        return real(model)

    real = canonize.canonized
    monkeypatch.setattr(canonize, "canonized", counting)
    torch.manual_seed(0)
    handle = zoo.wrap(seeded_batch_norms(SmallResNet(in_channels=3, num_classes=5, widths=(8, 8, 8), blocks=1)), input_size=16,
                      name="small_resnet", mean=(0.5,) * 3, std=(0.25,) * 3)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    before = state_snapshot(handle)
    first = interpret.lrp(handle, images, 1)
    second = interpret.lrp(handle, images, 1)
    found = interpret.concept_relevance(handle, images, 1, layer="layer1", channels=2)
    assert len(made) == 1
    assert torch.equal(first, second) and torch.allclose(found.total, first, atol=1e-5)
    assert_unchanged(before, handle)

    with torch.no_grad():  # an in-place write (as an optimizer step does)
        handle.model.fc.weight.mul_(-1)
    flipped = interpret.lrp(handle, images, 1)
    assert len(made) == 2
    fresh = interpret.lrp(handle, images, 1)  # reused again: same as a copy made from scratch
    assert len(made) == 2 and torch.equal(flipped, fresh)
    twin = zoo.wrap(copy.deepcopy(handle.model), input_size=16, name="twin", mean=(0.5,) * 3, std=(0.25,) * 3)
    torch.testing.assert_close(flipped, interpret.lrp(twin, images, 1), atol=1e-6, rtol=1e-5)  # made from scratch
    assert len(made) == 3
    assert not torch.allclose(flipped, first)

    handle.model.fc.bias.data.add_(1.0)  # a write through .data, which the version counter does not see
    interpret.lrp(handle, images, 1)
    assert len(made) == 4

    handle.model.layer1[0].act1 = torch.nn.Tanh()  # a module replaced: no weight or buffer tells
    replaced = interpret.lrp(handle, images, 1)
    assert len(made) == 5
    twin = zoo.wrap(copy.deepcopy(handle.model), input_size=16, name="twin", mean=(0.5,) * 3, std=(0.25,) * 3)
    torch.testing.assert_close(replaced, interpret.lrp(twin, images, 1), atol=1e-6, rtol=1e-5)


def test_the_z_plus_rule_that_skips_the_negative_half_after_a_relu_equals_zennits_on_lite0(lite0, photos):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat

    from cnnviz.interpret.attribution.lrp import relevance_network

    image = photos[:1]
    ours = interpret.lrp(lite0, image, 281, composite="epsilon_plus_flat", channels=True)
    network = relevance_network(lite0)  # the same canonized copy, with zennit's own rules
    with Gradient(network, EpsilonPlusFlat()) as attributor:
        _, reference = attributor((image - lite0.mean) / lite0.std, lambda out: out * torch.eye(1000, device=image.device)[[281]])
    torch.testing.assert_close(ours, reference, atol=1e-6 * reference.abs().max(), rtol=1e-5)
