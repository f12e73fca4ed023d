"""What a removed pixel becomes, checked against each reference in the way people use it: the reference gets the
bare torchvision model and the *normalized* tensor (so its masks and zero baselines turn pixels into the dataset
mean), cnnviz gets the handle, which normalizes inside, and [0, 1] pixels. Two models: a seeded ImageNet-normalized
ResNet18 (mean 0.485/0.456/0.406) and EfficientNet-Lite0 (mean 0.5).

The photos are shrunk to 96 px on ResNet18 so the one-pass-per-channel and one-pass-per-window references stay
fast; the convention tested does not depend on the size."""

import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, Occlusion
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torchray.attribution.rise import rise as torchray_rise

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.cam.core import min_max, upsample
from cnnviz.interpret.attribution.rise import rise_masks, rise_with_masks
from cnnviz.interpret.core.removal import FILLS, removed_pixels
from cnnviz.interpret.evaluate.faithfulness import deletion_insertion
from cnnviz.zoo.core import CnnvizError

TARGETS = [3, 7]  # the classes of the outside check that found the black-masking Score-CAM


@pytest.fixture(scope="module")
def resnet(device):
    torch.manual_seed(0)
    return zoo.load("resnet18", device=device, weights=None)


def photos(handle, side=None):
    images = handle.prepare([zoo.load_image("chelsea"), zoo.load_image("coffee")])
    return images if side is None else F.interpolate(images, size=(side, side), mode="bilinear", antialias=True)


def normalized(handle, images):
    """What a user of the reference library feeds it: the normalized tensor."""
    return (images - handle.mean) / handle.std


def test_dataset_mean_is_zero_after_normalization(resnet):
    images = photos(resnet, 32)
    removed = removed_pixels(resnet, images, "dataset_mean")
    assert normalized(resnet, removed).abs().max() < 1e-6
    assert not torch.allclose(removed, removed_pixels(resnet, images, "black"))
    with pytest.raises(CnnvizError, match="choose from"):
        removed_pixels(resnet, images, "purple")
    assert set(FILLS) >= {"dataset_mean", "black", "gray", "mean", "blur"}


@pytest.mark.parametrize("model", ["resnet18", "efficientnet_lite0"])
def test_score_cam_equals_pytorch_grad_cam_on_the_normalized_tensor(resnet, lite0, model):
    handle, layer, side = (resnet, "layer4", 96) if model == "resnet18" else (lite0, "stem", None)
    images = photos(handle, side)
    ours = interpret.scorecam(handle, images, TARGETS, layer=layer, upsample=False)
    with ScoreCAM(handle.model, [handle.layer(layer)]) as cam:
        theirs = torch.from_numpy(cam(normalized(handle, images), [ClassifierOutputTarget(t) for t in TARGETS]))
    ours = min_max(upsample(min_max(ours), images.shape[-2:]))[:, 0].cpu()
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=1e-3)
    if model == "resnet18":  # the option matters: masking the [0, 1] pixels is another map
        black = interpret.scorecam(handle, images, TARGETS, layer=layer, upsample=False, fill="black")
        assert (min_max(upsample(min_max(black), images.shape[-2:]))[:, 0].cpu() - theirs).abs().max() > 0.02


def test_occlusion_equals_captum_on_the_normalized_tensor(resnet):
    images = photos(resnet, 96)
    ours = interpret.occlusion(resnet, images, TARGETS, window=24, stride=12)
    theirs = Occlusion(lambda z: resnet.model(z).softmax(-1)).attribute(
        normalized(resnet, images), sliding_window_shapes=(3, 24, 24), strides=(3, 12, 12), baselines=0,
        target=TARGETS, perturbations_per_eval=8)
    torch.testing.assert_close(ours.expand_as(theirs), theirs, rtol=1e-4, atol=1e-6)


def test_rise_equals_torchray_on_the_normalized_tensor(resnet):
    images = photos(resnet, 96)
    masks = rise_masks(16, (96, 96), generator=torch.Generator().manual_seed(3), device=images.device)
    ours = rise_with_masks(resnet, images, TARGETS[0], masks, keep=0.5, score="sigmoid")
    theirs = torchray_rise(resnet.model, normalized(resnet, images), filter_masks=masks, num_masks=16,
                           batch_size=8)[:, TARGETS[0]:TARGETS[0] + 1]
    torch.testing.assert_close(ours * 0.5, theirs, rtol=1e-4, atol=1e-6)  # TorchRay divides by N, not N * keep


@pytest.mark.parametrize("model", ["resnet18", "efficientnet_lite0"])
def test_captum_baselines_through_the_adapter_equal_captum_on_the_normalized_tensor(resnet, lite0, model):
    # IG in pixel space from the dataset mean equals IG in normalized space from zero: the chain rule's std
    # cancels between (x - baseline) and the gradient.
    handle = resnet if model == "resnet18" else lite0
    images = photos(handle, 64)
    ours = interpret.get_method("captum:IntegratedGradients").fn(handle, images, TARGETS, steps=8)
    theirs = IntegratedGradients(handle.model).attribute(normalized(handle, images), target=TARGETS, n_steps=8)
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-6)


def test_deletion_to_the_dataset_mean_ends_on_the_reference_substrate(resnet):
    # Petsiuk et al.'s code deletes to zeros of the normalized input: the fully deleted image is the mean.
    images = photos(resnet, 64)
    curves = deletion_insertion(resnet, images, torch.rand(2, 1, 64, 64), TARGETS, steps=4,
                                deletion_to="dataset_mean")
    with torch.no_grad():
        substrate = resnet.model(torch.zeros_like(images)).softmax(-1)[[0, 1], TARGETS]
    torch.testing.assert_close(curves.deletion[:, -1], substrate, rtol=1e-4, atol=1e-6)
