"""Attribution methods against captum (the oracle), plus invariants every method must keep."""

import copy

import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, Occlusion, Saliency
from torch import nn

from cnnviz import interpret
from cnnviz import zoo
from tests.conftest import TinyCNN, assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError

COURSE = {"occlusion", "gradient", "smoothgrad", "integrated_gradients", "guided_backprop", "gradcam", "guided_gradcam"}
ATTRIBUTION = [m.name for m in interpret.methods("attribution") if m.name in COURSE]  # the others: test_cam.py, ...
FAST_OPTIONS = {"occlusion": {"window": 8, "stride": 4}, "smoothgrad": {"samples": 4},
                "integrated_gradients": {"steps": 4}}


def test_every_course_method_is_registered():
    assert set(ATTRIBUTION) == COURSE


# --- agreement with captum -------------------------------------------------------------------

def test_gradient_equals_captum_saliency(lite0, photos):
    ours = interpret.saliency(lite0, photos, [282, 967], signed=True)
    theirs = Saliency(lite0).attribute(photos, target=[282, 967], abs=False)
    torch.testing.assert_close(ours, theirs)
    captum_abs = Saliency(lite0).attribute(photos, target=[282, 967], abs=True)
    torch.testing.assert_close(interpret.saliency(lite0, photos, [282, 967]), captum_abs.amax(1, keepdim=True))


def test_integrated_gradients_equal_captum(lite0, photos):
    ours = interpret.integrated_gradients(lite0, photos, "espresso", steps=16)
    theirs = IntegratedGradients(lite0).attribute(photos, target=967, n_steps=16, method="gausslegendre",
                                                  internal_batch_size=32)
    # Equal to 1e-3 of the map's range: with another summation order (one thread, other batches) a few
    # pre-activations land on the other side of a ReLU6 kink, which moves single gradients (8e-4 of the
    # range at most, measured on one thread; 1e-5 absolute on two).
    spread = float(theirs.max() - theirs.min())
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3 * spread)


def test_integrated_gradients_completeness(tiny, device):
    x = torch.rand(3, 3, 16, 16, device=device)
    attributions = interpret.integrated_gradients(tiny, x, 1, steps=64)
    with torch.no_grad():
        gap = tiny(x)[:, 1] - tiny(torch.zeros_like(x))[:, 1]
    torch.testing.assert_close(attributions.sum((1, 2, 3)), gap, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("score", ["prob", "logit"])
def test_occlusion_equals_captum(lite0, photos, score):
    ours = interpret.occlusion(lite0, photos, [282, 967], window=56, stride=28, fill="gray", score=score)
    forward = (lambda x: lite0(x).softmax(-1)) if score == "prob" else lite0
    theirs = Occlusion(forward).attribute(photos, sliding_window_shapes=(3, 56, 56), strides=(3, 28, 28),
                                          baselines=0.5, target=[282, 967], perturbations_per_eval=16)
    # The default path may be the incremental engine, whose convolutions on crops round differently:
    # equal to 1e-4 of the map's range (issue 27's bar; 1e-6 absolute stays the floor).
    spread = float(theirs.max() - theirs.min())
    torch.testing.assert_close(ours.expand_as(theirs), theirs, rtol=1e-4, atol=max(1e-6, 1e-4 * spread))


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_occlusion_of_the_predicted_class_equals_the_explicit_target(device, batch_size):
    # The clean images share the stream of occluded rows: with batches of 1 or 2, the three clean rows
    # are split across batches, and each image must still be scored for its own predicted class.
    torch.manual_seed(0)
    colour = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).to(device)
    with torch.no_grad():  # logits ~ the mean of each colour channel, a little blurred
        colour[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1).expand(3, 3, 3, 3) / 9)
        colour[0].bias.zero_()
    x = 0.2 * torch.rand(3, 3, 16, 16, device=device)
    x[torch.arange(3), torch.tensor([2, 0, 1])] += 0.7  # blue, red, green images
    assert colour(x).argmax(-1).tolist() == [2, 0, 1]
    ours = interpret.occlusion(colour, x, None, window=6, stride=5, batch_size=batch_size)
    torch.testing.assert_close(ours, interpret.occlusion(colour, x, [2, 0, 1], window=6, stride=5, batch_size=64))
    assert (ours > 0).all()  # hiding part of the dominant colour always lowers its probability


@pytest.mark.parametrize("model_name,layer", [("efficientnet_lite0", "head"), ("resnet18", "layer4"),
                                              ("efficientnet_lite0", "blocks.10.depthwise.conv")])
def test_gradcam_equals_captum(model_name, layer, device):
    handle = zoo.load(model_name, device=device, weights="pretrained" if "lite" in model_name else None)
    images = handle.prepare([zoo.load_image("chelsea"), zoo.load_image("astronaut")])
    ours = interpret.gradcam(handle, images, [281, 3], layer=layer, upsample=False)
    theirs = LayerGradCam(handle, handle.layer(layer)).attribute(images, target=[281, 3], relu_attributions=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_guided_backprop_equals_captum_where_captum_works(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    torch.testing.assert_close(interpret.guided_backprop(tiny, x, [0, 2]),
                               GuidedBackprop(tiny).attribute(x, target=[0, 2]))


class SplitReLUBlock(nn.Module):
    """A torchvision BasicBlock whose shared ``relu`` is split into two modules (the oracle's form)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block, self.relu_a, self.relu_b = block, nn.ReLU(), nn.ReLU()

    def forward(self, x):
        b = self.block
        out = self.relu_a(b.bn1(b.conv1(x)))
        out = b.bn2(b.conv2(out))
        identity = b.downsample(x) if b.downsample is not None else x
        return self.relu_b(out + identity)


def test_guided_backprop_on_resnet_with_reused_relu(device):
    torch.manual_seed(0)
    handle = zoo.load("resnet18", device=device, weights=None)
    oracle = copy.deepcopy(handle)
    for layer in (oracle.model.layer1, oracle.model.layer2, oracle.model.layer3, oracle.model.layer4):
        for i in range(len(layer)):
            layer[i] = SplitReLUBlock(layer[i])
    oracle.model.relu = nn.ReLU()  # not in place: captum's hooks need that
    x = torch.rand(2, 3, 64, 64, device=device)
    ours = interpret.guided_backprop(handle, x, [5, 7])
    torch.testing.assert_close(ours, GuidedBackprop(oracle).attribute(x, target=[5, 7]), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(ours, interpret.saliency(handle, x, [5, 7], signed=True))


class FunctionalReLUNet(nn.Module):
    """TinyCNN's weights, with ReLUs called as functions (captum cannot see these)."""

    def __init__(self, tiny: TinyCNN) -> None:
        super().__init__()
        self.tiny = tiny

    def forward(self, x):
        t = self.tiny
        return t.fc(t.pool(F.relu(t.conv2(torch.relu(t.conv1(x))))).flatten(1))


def test_guided_backprop_sees_functional_relus(tiny, device):
    functional = FunctionalReLUNet(tiny.model)
    x = torch.rand(2, 3, 16, 16, device=device)
    expected = GuidedBackprop(tiny.model).attribute(x, target=[1, 1])  # module ReLUs: captum is right
    torch.testing.assert_close(interpret.guided_backprop(functional, x, [1, 1]), expected)
    captum_functional = GuidedBackprop(functional).attribute(x, target=[1, 1])
    assert not torch.allclose(captum_functional, expected)  # captum silently falls back to plain gradients


def _hook_guided_oracle(handle, images, target):
    """Guided backprop by module backward hooks on every ReLU6 (valid when no module is reused)."""
    handles = [m.register_full_backward_hook(lambda mod, gin, gout: (gin[0].clamp(min=0),))
               for m in handle.model.modules() if isinstance(m, nn.ReLU6)]
    try:
        x = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(handle(x)[:, target].sum(), x)
    finally:
        for h in handles:
            h.remove()
    return grad


def test_guided_backprop_on_efficientnet_lite_own_and_reference_form(lite0, photos):
    ours = interpret.guided_backprop(lite0, photos, 282)
    frozen = copy.deepcopy(lite0)
    torch.testing.assert_close(ours, _hook_guided_oracle(frozen, photos, 282), rtol=1e-4, atol=1e-6)
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from cnnviz.zoo.catalog import shipped_weights_path
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0")  # one ReLU6 reused per block
    reference.load_state_dict(torch.load(shipped_weights_path("efficientnet_lite0"), weights_only=True))
    wrapped = zoo.wrap(reference.to(lite0.device).eval(), mean=(0.5,) * 3, std=(0.5,) * 3)
    torch.testing.assert_close(interpret.guided_backprop(wrapped, photos, 282), ours, rtol=1e-3, atol=1e-5)


# --- our own oracles --------------------------------------------------------------------------

def test_smoothgrad_is_the_mean_gradient_of_the_same_noisy_copies(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    ours = interpret.smoothgrad(tiny, x, [0, 1], samples=5, noise=0.2, seed=3, signed=True)
    generator = torch.Generator(device=device).manual_seed(3)
    noisy = x.repeat_interleave(5, 0) + 0.2 * torch.randn((10, 3, 16, 16), generator=generator, device=device)
    grads = interpret.saliency(tiny, noisy, [0] * 5 + [1] * 5, signed=True)
    torch.testing.assert_close(ours, grads.view(2, 5, 3, 16, 16).mean(1))
    torch.testing.assert_close(interpret.smoothgrad(tiny, x, 1, samples=3, noise=0.0),
                               interpret.saliency(tiny, x, 1))


def test_guided_gradcam_is_the_product(lite0, photos):
    product = interpret.guided_backprop(lite0, photos, 967) * interpret.gradcam(lite0, photos, 967)
    torch.testing.assert_close(interpret.guided_gradcam(lite0, photos, 967), product)


class RegionScore(nn.Module):
    """Class 1's logit is 10 x the mean of the top-left 8x8 red pixels; class 0 is constant."""

    def forward(self, x):
        region = x[:, 0, :8, :8].mean((1, 2)) * 10
        return torch.stack([torch.zeros_like(region), region], 1)


def test_occlusion_finds_the_region_the_model_reads(device):
    x = torch.ones(1, 3, 32, 32, device=device)
    heat = interpret.occlusion(RegionScore(), x, 1, window=8, stride=8, fill="black", score="logit")[0, 0]
    assert heat[:8, :8].min() > 0 and heat[8:, :].abs().max() == 0 and heat[:, 8:].abs().max() == 0


def test_occlusion_covers_the_edges_when_the_stride_does_not_divide(tiny, device):
    heat = interpret.occlusion(tiny, torch.rand(1, 3, 16, 16, device=device), 0, window=5, stride=4)
    assert heat.shape == (1, 1, 16, 16) and (heat[0, 0, -1] != 0).any()


# --- invariants for every registered method --------------------------------------------------

@pytest.mark.parametrize("name", ATTRIBUTION)
def test_method_leaves_model_and_input_unchanged(name, tiny, device):
    tiny.train()
    tiny.model.conv1.weight.requires_grad_(False)
    before = state_snapshot(tiny)
    x = torch.rand(2, 3, 16, 16, device=device, requires_grad=True)
    x_before = x.detach().clone()
    out = interpret.get_method(name).fn(tiny, x, "bee", **FAST_OPTIONS.get(name, {}))
    assert out.shape[0] == 2 and out.shape[-2:] == (16, 16) and torch.isfinite(out).all()
    assert out.device == x.device
    assert_unchanged(before, tiny)
    assert torch.equal(x.detach(), x_before) and x.grad is None


@pytest.mark.parametrize("name", ATTRIBUTION)
def test_method_leaves_model_unchanged_when_it_raises(name, tiny, device):
    tiny.train()
    before = state_snapshot(tiny)
    with pytest.raises(CnnvizError, match="out of range"):
        interpret.get_method(name).fn(tiny, torch.rand(1, 3, 16, 16, device=device), 7,
                                      **FAST_OPTIONS.get(name, {}))
    assert_unchanged(before, tiny)


@pytest.mark.parametrize("name", ATTRIBUTION)
def test_batch_size_does_not_change_results(name, tiny, device):
    x = torch.rand(3, 3, 16, 16, device=device)
    method = interpret.get_method(name).fn
    options = FAST_OPTIONS.get(name, {})
    torch.testing.assert_close(method(tiny, x, [0, 1, 2], batch_size=1, **options),
                               method(tiny, x, [0, 1, 2], batch_size=64, **options))


@pytest.mark.parametrize("name", ATTRIBUTION)
@pytest.mark.parametrize("model_name", ["efficientnet_lite0", "resnet18"])
def test_every_method_runs_on_real_architectures(name, model_name, device):
    handle = zoo.load(model_name, device=device, weights="pretrained" if "lite" in model_name else None)
    x = handle.prepare([zoo.load_image("coffee")])
    options = {"occlusion": {"window": 56, "stride": 56}}.get(name, FAST_OPTIONS.get(name, {}))
    out = interpret.get_method(name).fn(handle, x, None, **options)
    assert out.shape[-2:] == (224, 224) and torch.isfinite(out).all() and out.abs().sum() > 0


def test_gradcam_rejects_non_conv_layer(lite0, photos):
    with pytest.raises(CnnvizError, match="conv layer"):
        interpret.gradcam(lite0, photos, layer="classifier")
