"""captum's catalog through the registry: native methods and their captum twins agree, any class runs by
name, options reach captum under its own names, and the caller's random state is left alone."""

import numpy as np
import pytest
import torch

from cnnviz import interpret
from cnnviz.interpret.attribution.captum_adapter import grid_mask
from cnnviz.zoo.core import CnnvizError


def captum(name):
    return interpret.get_method("captum:" + name).fn


def test_native_gradient_equals_captum_saliency_through_the_registry(lite0, photos):
    ours = interpret.saliency(lite0, photos, ["tiger cat", "espresso"])
    theirs = captum("Saliency")(lite0, photos, ["tiger cat", "espresso"])  # |gradient| per channel
    torch.testing.assert_close(ours, theirs.amax(dim=1, keepdim=True))


def test_native_integrated_gradients_equal_captum_through_the_registry(lite0, photos):
    ours = interpret.integrated_gradients(lite0, photos, [282, 967], steps=8)
    theirs = captum("IntegratedGradients")(lite0, photos, [282, 967], steps=8, baseline="black")  # the paper's
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-5)


def test_native_occlusion_equals_captum_occlusion_through_the_registry(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    ours = interpret.occlusion(tiny, x, [0, 2], window=4, stride=2, fill="black", score="logit")
    theirs = captum("Occlusion")(tiny, x, [0, 2], segments=4, baseline="black")  # window 16 / 4, stride 2
    torch.testing.assert_close(ours, theirs[:, :1], rtol=1e-4, atol=1e-6)


def test_any_captum_class_runs_by_name_and_is_registered_on_first_use(tiny, device):
    name = "captum:NoiseTunnel(Deconvolution)"  # a name no other test registers
    assert name not in [m.name for m in interpret.methods()]
    out = interpret.get_method(name).fn(tiny, torch.rand(1, 3, 16, 16, device=device), "bee", samples=3)
    assert out.shape == (1, 3, 16, 16) and torch.isfinite(out).all()
    assert interpret.get_method(name).group == "captum"
    assert "Smilkov" in interpret.get_method(name).fn.__doc__


@pytest.mark.parametrize("name,message", [("captum:DeepLif", "DeepLift"), ("captum:NeuronGradient", "neuron"),
                                          ("captum:Noise Tunnel(", "cannot read"),
                                          ("captum:Saliency(Lime)", "only in NoiseTunnel")])
def test_bad_captum_names_get_one_line_errors(name, message):
    with pytest.raises(CnnvizError, match=message) as error:
        interpret.get_method(name)
    assert "\n" not in str(error.value)


def test_a_method_captum_cannot_run_says_why_in_one_line(lite0, photos):
    with pytest.raises(CnnvizError, match="captum:LRP cannot run on efficientnet_lite0") as error:
        captum("LRP")(lite0, photos[:1], 967)
    assert "\n" not in str(error.value)


def test_random_captum_methods_are_seeded_and_leave_the_global_rng(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = captum("GradientShap")(tiny, x, [0, 1], samples=4)  # draws baselines with numpy, noise with torch
    assert torch.equal(torch.random.get_rng_state(), state)
    assert (np.random.get_state()[1] == numpy_state).all()
    torch.testing.assert_close(first, captum("GradientShap")(tiny, x, [0, 1], samples=4))
    assert not torch.equal(first, captum("GradientShap")(tiny, x, [0, 1], samples=4, seed=1))


def test_callable_targets_reach_captum(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    torch.testing.assert_close(captum("InputXGradient")(tiny, x, lambda out: out[:, 2]),
                               captum("InputXGradient")(tiny, x, 2))


def test_perturbation_methods_act_on_a_grid_of_segments(tiny, device):
    mask = grid_mask(torch.zeros(1, 3, 16, 16), 4)
    assert mask.unique().numel() == 16 and (mask[0, 0, :4, :4] == 0).all()
    maps = captum("FeatureAblation")(tiny, torch.rand(1, 3, 16, 16, device=device), 1, segments=4)
    assert maps[0, 0, :4, :4].unique().numel() == 1  # one value per segment


def test_layer_methods_become_input_sized_maps(lite0, photos):
    from captum.attr import LayerAttribution, LayerGradCam

    direct = LayerGradCam(lite0, lite0.layer("head")).attribute(photos, target=[281, 967])
    ours = captum("LayerGradCam")(lite0, photos, [281, 967])  # the model's default layer: head
    torch.testing.assert_close(ours, LayerAttribution.interpolate(direct, (224, 224), "bilinear"))
