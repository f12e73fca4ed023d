"""The CAM family against pytorch-grad-cam 1.5.7 (the oracle), on real photos, plus what the core promises:
several layers fused, token and channels-last layers, one-line errors, Ablation-CAM above its layer only."""

import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam import (
    FEM,
    KPCA_CAM,
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    ShapleyCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.cam.core import min_max, principal_projection, to_grid, upsample
from cnnviz.zoo.core import CnnvizError

CAMS = [m.name for m in interpret.methods("attribution") if m.group == "cams"]
GRADIENT_AND_ACTIVATION = {"gradcam": GradCAM, "gradcam_plusplus": GradCAMPlusPlus, "xgradcam": XGradCAM,
                           "hirescam": HiResCAM, "gradcam_elementwise": GradCAMElementWise, "layercam": LayerCAM,
                           "shapleycam": ShapleyCAM, "kpcacam": KPCA_CAM, "fem": FEM}
MODELS = [("resnet18", "layer4"), ("efficientnet_lite0", "head")]
TARGETS = [281, 967]  # tabby, espresso
# Maps are compared after min-max scaling, so tolerances are fractions of each map's range. The random-weight
# resnet18's channel sums cancel to ~1 % of their terms, so float32 rounding of the two libraries differs by up to
# ~1e-3 of the range there; a wrong formula differs by 0.1-1.
TOL = {"atol": 2e-3, "rtol": 1e-3}


@pytest.fixture(scope="module")
def models(device):
    torch.manual_seed(0)
    resnet = zoo.load("resnet18", device=device, weights=None)
    lite0 = zoo.load("efficientnet_lite0", device=device)
    return {"resnet18": resnet, "efficientnet_lite0": lite0}


def photos(handle):
    return handle.prepare([zoo.load_image("chelsea"), zoo.load_image("coffee")])


def reference(cam_class, handle, layers, images, targets=TARGETS, **kwargs):
    """pytorch-grad-cam's map, on the handle (so both sides see pixels in [0, 1])."""
    with cam_class(handle, [handle.layer(name) for name in layers], **kwargs) as cam:
        return torch.from_numpy(cam(images, [ClassifierOutputTarget(t) for t in targets]))


def as_reference_scales(ours, size=(224, 224)):
    """pytorch-grad-cam's post-processing of a layer-resolution map: min-max, bilinear resize, min-max."""
    return min_max(upsample(min_max(ours), size))[:, 0].cpu()


@pytest.mark.parametrize("model_name,layer", MODELS)
@pytest.mark.parametrize("name", list(GRADIENT_AND_ACTIVATION))
def test_cam_equals_pytorch_grad_cam(models, model_name, layer, name):
    handle = models[model_name]
    images = photos(handle)
    ours = interpret.get_method(name).fn(handle, images, TARGETS, layer=layer, upsample=False)
    theirs = reference(GRADIENT_AND_ACTIVATION[name], handle, [layer], images)
    torch.testing.assert_close(as_reference_scales(ours), theirs, **TOL)


@pytest.mark.parametrize("model_name,layer", MODELS)
@pytest.mark.parametrize("name,cam_class", [("eigencam", EigenCAM), ("eigengradcam", EigenGradCAM)])
def test_eigen_cams_equal_pytorch_grad_cam_up_to_the_svd_sign(models, model_name, layer, name, cam_class):
    handle = models[model_name]
    images = photos(handle)
    theirs = reference(cam_class, handle, [layer], images)
    ours = interpret.get_method(name).fn(handle, images, TARGETS, layer=layer, upsample=False)
    with torch.enable_grad(), interpret.record({layer: handle.layer(layer)}, detach=False) as rec:
        x = images.clone().requires_grad_(True)
        score = handle(x).gather(1, torch.tensor(TARGETS, device=x.device)[:, None]).sum()
        grad = torch.autograd.grad(score, rec[layer].output)[0]
    grid = rec[layer].output.detach() * (grad if name == "eigengradcam" else 1)
    raw = principal_projection(grid, align=False)[:, None]
    for i in range(2):  # each image: one of the two signs is pytorch-grad-cam's, ours is the aligned one
        both = [as_reference_scales(F.relu(sign * raw[i:i + 1])) for sign in (1, -1)]
        errors = [(b - theirs[i:i + 1]).abs().max().item() for b in both]
        assert min(errors) < TOL["atol"]
        torch.testing.assert_close(as_reference_scales(ours[i:i + 1]), both[0] if
                                   (raw[i].flatten() * grid[i].sum(0).flatten()).sum() >= 0 else both[1])


@pytest.mark.parametrize("model_name,layer", [("resnet18", "layer1"), ("efficientnet_lite0", "stem")])
def test_score_cam_equals_pytorch_grad_cam(models, model_name, layer):
    # pytorch-grad-cam on the handle masks [0, 1] pixels, as fill="black" does (the standard usage, masking the
    # normalized tensor, is the default's: tests/interpret/core/test_removal.py).
    handle = models[model_name]
    images = photos(handle)[:1]
    ours = interpret.scorecam(handle, images, TARGETS[:1], layer=layer, upsample=False, fill="black")
    theirs = reference(ScoreCAM, handle, [layer], images, TARGETS[:1])
    torch.testing.assert_close(as_reference_scales(ours), theirs, **TOL)


@pytest.mark.parametrize("model_name,layer", [("resnet18", "layer1"), ("efficientnet_lite0", "stem")])
def test_ablation_cam_equals_pytorch_grad_cam(models, model_name, layer):
    # Both ablate to zero here: the layers end in a ReLU, so pytorch-grad-cam's ablation value is 0 too.
    handle = models[model_name]
    images = photos(handle)[:1]
    ours = interpret.ablationcam(handle, images, TARGETS[:1], layer=layer, upsample=False)
    theirs = reference(AblationCAM, handle, [layer], images, TARGETS[:1])
    torch.testing.assert_close(as_reference_scales(ours), theirs, **TOL)


def test_ablation_cam_runs_the_network_below_its_layer_once_per_batch(models):
    handle = models["efficientnet_lite0"]
    calls = []
    counter = handle.model.stem.register_forward_hook(lambda *_: calls.append(1))
    try:
        interpret.ablationcam(handle, photos(handle)[:1], 967, layer="head", batch_size=256)
    finally:
        counter.remove()
    assert len(calls) == 1 + 5  # the clean pass, then 1280 ablated channels in 5 batches of 256


@pytest.mark.parametrize("model_name", ["resnet18", pytest.param("efficientnet_lite0", marks=pytest.mark.slow)])
def test_fullgrad_equals_pytorch_grad_cam(models, model_name):
    handle = models[model_name]
    images = photos(handle)
    ours = interpret.fullgrad(handle, images, TARGETS)
    with FullGrad(handle, []) as cam:
        theirs = torch.from_numpy(cam(images, [ClassifierOutputTarget(t) for t in TARGETS]))
    torch.testing.assert_close(min_max(ours)[:, 0].cpu(), theirs, **TOL)  # FullGrad's maps are input-sized


@pytest.mark.parametrize("model_name,layer", MODELS)
def test_finer_cam_equals_pytorch_grad_cam(models, model_name, layer):
    handle = models[model_name]
    images = photos(handle)
    ours = interpret.finercam(handle, images, 281, layer=layer, upsample=False)
    with FinerCAM(handle, [handle.layer(layer)]) as cam:
        theirs = torch.from_numpy(cam(images, target_idx=281))
    torch.testing.assert_close(as_reference_scales(ours), theirs, **TOL)


@pytest.mark.parametrize("model_name,layers", [("resnet18", ["layer3", "layer4"]),
                                               ("efficientnet_lite0", "blocks.10,blocks.15,head")])
@pytest.mark.parametrize("name", ["gradcam", "layercam"])
def test_several_layers_fuse_as_pytorch_grad_cam_fuses_them(models, model_name, layers, name):
    handle = models[model_name]
    images = photos(handle)
    ours = interpret.get_method(name).fn(handle, images, TARGETS, layer=layers)
    names = layers.split(",") if isinstance(layers, str) else layers
    theirs = reference(GRADIENT_AND_ACTIVATION[name], handle, names, images)
    torch.testing.assert_close(ours[:, 0].cpu(), theirs, **TOL)


def test_gradcam_on_a_vit_token_layer_equals_pytorch_grad_cam_with_its_reshape_transform(device):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).to(device)
    handle = zoo.wrap(vit, input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3, name="vit")
    images = photos(handle)
    layer = "blocks.11.norm1"

    def vit_tokens_to_grid(tokens):  # what pytorch-grad-cam's README asks its users to write
        return tokens[:, 1:, :].reshape(tokens.shape[0], 14, 14, tokens.shape[2]).permute(0, 3, 1, 2)

    ours = interpret.gradcam(handle, images, [3, 7], layer=layer, upsample=False)
    assert ours.shape == (2, 1, 14, 14)
    theirs = reference(GradCAM, handle, [layer], images, [3, 7], reshape_transform=vit_tokens_to_grid)
    torch.testing.assert_close(as_reference_scales(ours), theirs, **TOL)


class ChannelsLast(nn.Module):
    """A conv stage whose output is channels-last ``(B, h, w, C)``, as Swin's and ConvNeXt's blocks are."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 5, stride=4)
        self.stage = nn.Sequential(nn.ReLU())
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        return self.head(self.stage(self.conv(x).permute(0, 2, 3, 1)).mean(dim=(1, 2)))


def test_gradcam_on_a_channels_last_layer_equals_pytorch_grad_cam(device):
    torch.manual_seed(0)
    handle = zoo.wrap(ChannelsLast().to(device), input_size=64, name="nhwc")
    images = torch.rand(2, 3, 64, 64, device=device)
    ours = interpret.gradcam(handle, images, [1, 4], layer="stage", upsample=False)
    theirs = reference(GradCAM, handle, ["stage"], images, [1, 4], reshape_transform=lambda t: t.permute(0, 3, 1, 2))
    torch.testing.assert_close(as_reference_scales(ours, (64, 64)), theirs, **TOL)


def test_token_grids_drop_the_leading_tokens_and_explicit_layouts_win():
    tokens = torch.arange(2 * 50 * 3.0).view(2, 50, 3)  # 1 class token + 7 x 7
    assert torch.equal(to_grid(tokens)[:, :, 0, 0], tokens[:, 1])
    square = torch.rand(1, 5, 5, 5)
    assert torch.equal(to_grid(square, "channels_last"), square.permute(0, 3, 1, 2))
    assert torch.equal(to_grid(square), square)
    assert to_grid(torch.rand(1, 20, 4)).shape == (1, 4, 4, 4)  # 4 register tokens + 4 x 4
    with pytest.raises(CnnvizError, match="square grid"):
        to_grid(torch.rand(1, 75, 4))  # 67..75 tokens after 0..8 leading ones: no square


@pytest.mark.parametrize("name", [n for n in CAMS if n not in ("fullgrad", "guided_gradcam")])
def test_cams_refuse_a_layer_without_a_grid_in_one_line(models, name):
    handle = models["resnet18"]
    with pytest.raises(CnnvizError, match="conv layer") as error:
        interpret.get_method(name).fn(handle, photos(handle)[:1], 281, layer="fc")
    assert "\n" not in str(error.value)


def test_fullgrad_says_why_it_cannot_read_a_model_without_biases(device):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2)).to(device)
    with pytest.raises(CnnvizError, match="biases"):
        interpret.fullgrad(zoo.wrap(net, input_size=16), torch.rand(1, 3, 16, 16, device=device), 0)


@pytest.mark.parametrize("name", CAMS)
def test_batch_size_does_not_change_cams(tiny, device, name):
    x = torch.rand(3, 3, 16, 16, device=device)
    method = interpret.get_method(name).fn
    torch.testing.assert_close(method(tiny, x, [0, 1, 2], batch_size=1), method(tiny, x, [0, 1, 2], batch_size=64))


def test_kpcacam_on_a_large_grid_takes_lobpcg_and_equals_the_full_eigendecomposition(monkeypatch):
    from cnnviz.interpret.attribution.cam import activation_variants

    torch.manual_seed(0)
    grid = torch.relu(torch.randn(2, 16, 30, 30) + torch.linspace(-1, 1, 30).view(1, 1, 30, 1))
    assert 30 * 30 > activation_variants.FULL_EIGH_CELLS
    fast = activation_variants.kernel_projection(grid, None)
    monkeypatch.setattr(activation_variants, "FULL_EIGH_CELLS", 10_000)
    full = activation_variants.kernel_projection(grid, None)
    torch.testing.assert_close(fast, full, rtol=1e-6, atol=1e-6 * float(full.abs().max()))
