"""Style transfer: Gram matrices by hand, zero losses at their own targets, falling loss, colour
preservation, coarse-to-fine sizes, no mutation, bad inputs, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from cnnviz import zoo
from cnnviz.cli.main import main
from cnnviz.interpret.optimize.objectives import Context
from cnnviz.interpret.optimize.style import (
    Smoothing,
    content_loss,
    default_layers,
    gram,
    octave_sizes,
    preserve_color,
    rgb_to_ycbcr,
    softmax_smooth,
    style_loss,
    style_transfer,
    ycbcr_to_rgb,
)
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


def _context(layer: str, features: torch.Tensor) -> Context:
    return Context(torch.zeros(1), torch.zeros(1), torch.zeros(1), {layer: features})


def test_gram_matches_hand_computation() -> None:
    features = torch.arange(12, dtype=torch.float32).view(1, 2, 2, 3)  # channel 0: 0..5, channel 1: 6..11
    a, b = list(range(6)), list(range(6, 12))
    expected = torch.tensor([[sum(x * x for x in a), sum(x * y for x, y in zip(a, b))],
                             [sum(x * y for x, y in zip(a, b)), sum(y * y for y in b)]], dtype=torch.float32) / 6
    assert torch.allclose(gram(features)[0], expected)
    batch = torch.randn(3, 4, 5, 6)
    loop = torch.stack([f.flatten(1) @ f.flatten(1).T / 30 for f in batch])
    assert torch.allclose(gram(batch), loop, atol=1e-5)


def test_softmax_smoothing_is_a_scaled_softmax_over_all_values() -> None:
    features = torch.randn(2, 3, 4, 5)
    smoothed = softmax_smooth(features, 2.0)
    assert torch.allclose(smoothed.flatten(1).mean(1), torch.ones(2))  # mean one
    assert torch.allclose(smoothed[1], (features[1] / 2).flatten().softmax(0).view(3, 4, 5) * 60)
    assert Smoothing(None)(features) is features


@pytest.mark.parametrize("scale", [None, 1.0])
def test_losses_are_zero_at_their_own_targets(scale: float | None) -> None:
    style_features, content_features = torch.rand(1, 4, 6, 7), torch.rand(2, 4, 5, 5)
    smoothing = Smoothing(scale)
    assert style_loss("l", style_features, smoothing)(_context("l", style_features)).item() == pytest.approx(0)
    assert content_loss("l", content_features, smoothing)(_context("l", content_features)).abs().max() < 1e-6
    # the Gram matrix ignores where a pattern is: a flipped style image has zero style loss too
    flipped = style_features.flip(-1)
    assert style_loss("l", style_features, smoothing)(_context("l", flipped)).item() == pytest.approx(0, abs=1e-6)
    assert content_loss("l", content_features, smoothing)(_context("l", content_features.flip(-1))).min() > 1e-3


def test_style_and_content_losses_zero_through_a_model(tiny: zoo.ModelHandle) -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 16, 16, device=tiny.device)
    result = style_transfer(tiny, image, style=image[0], steps=1, tv_weight=0.0, progress=False)
    assert result.history["style"][0, 0].item() == pytest.approx(0, abs=1e-6)
    assert result.history["content"][0, 0].item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_total_loss_falls(tiny: zoo.ModelHandle, optimizer: str) -> None:
    torch.manual_seed(1)
    content = torch.rand(1, 3, 24, 24, device=tiny.device)
    style = torch.rand(3, 20, 20)
    result = style_transfer(tiny, content, style=style, steps=30, optimizer=optimizer, smooth=True,
                            progress=False)
    total = result.history["total"][:, 0]
    assert total.shape == (31,) and torch.isfinite(total).all()
    assert total[-1] < 0.5 * total[0]
    assert result.history["style"][-1, 0] < result.history["style"][0, 0]


def test_color_preservation_keeps_the_contents_chroma(tiny: zoo.ModelHandle) -> None:
    torch.manual_seed(2)
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    gray = rgb_to_ycbcr(torch.full((1, 3, 2, 2), 0.3))
    assert torch.allclose(gray[:, 1:], torch.zeros(1)) and torch.allclose(gray[:, 0], torch.full((1, 2, 2), 0.3))
    content = 0.25 + 0.5 * torch.rand(1, 3, 24, 24, device=tiny.device)  # away from 0/1: no clamping
    result = style_transfer(tiny, content, style=torch.rand(3, 16, 16), steps=5, preserve_colors=True,
                            progress=False)
    out = result.images
    unclamped = ((out > 1e-4) & (out < 1 - 1e-4)).all(1)
    chroma_out, chroma_in = rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(content)[:, 1:]
    assert unclamped.float().mean() > 0.9
    assert torch.allclose(chroma_out.permute(1, 0, 2, 3)[:, unclamped], chroma_in.permute(1, 0, 2, 3)[:, unclamped],
                          atol=1e-4)
    plain = style_transfer(tiny, content, style=torch.rand(3, 16, 16), steps=5, progress=False)
    assert not torch.allclose(rgb_to_ycbcr(plain.images)[:, 1:], chroma_in, atol=1e-3)  # it did change colour


def test_preserve_color_leaves_gray_images() -> None:
    image = torch.rand(1, 1, 5, 5)
    assert preserve_color(image, torch.rand(1, 1, 5, 5)) is image


def test_coarse_to_fine_sizes(tiny: zoo.ModelHandle) -> None:
    assert octave_sizes(1024, 768, 512) == [(512, 384), (1024, 768)]
    assert octave_sizes(2048, 2048, 512) == [(512, 512), (1024, 1024), (2048, 2048)]
    assert octave_sizes(300, 200, None) == [(300, 200)]
    content = torch.rand(1, 3, 30, 40, device=tiny.device)
    result = style_transfer(tiny, content, style=torch.rand(3, 10, 10), size=64, coarse=16, steps=4,
                            progress=False)
    assert result.images.shape == (1, 3, 48, 64)
    assert result.octaves == [(12, 16, 4), (24, 32, 2), (48, 64, 2)]
    assert result.history["total"].shape == (9, 1)  # before each step, and after the last


def test_model_unchanged_and_feature_handle_stops_early(tiny: zoo.ModelHandle) -> None:
    tiny.model.train()
    before = state_snapshot(tiny)
    style_transfer(tiny, torch.rand(1, 3, 16, 16, device=tiny.device), style=torch.rand(3, 16, 16), steps=3,
                   progress=False)
    assert_unchanged(before, tiny)
    with pytest.raises(CnnvizError):
        style_transfer(tiny, torch.rand(1, 3, 16, 16, device=tiny.device), style=torch.rand(2, 2), steps=3)
    assert_unchanged(before, tiny)
    calls = []
    handle = tiny.model.fc.register_forward_hook(lambda *a: calls.append(1))
    try:
        style_transfer(tiny, torch.rand(1, 3, 9, 9, device=tiny.device), style=torch.rand(3, 9, 9), steps=2,
                       style_layers="conv1", content_layer="conv1", progress=False)
    finally:
        handle.remove()
    assert not calls  # the dense layer never ran: style transfer stops at its last layer


def test_default_layers() -> None:
    import torchvision

    from cnnviz.zoo.handle import ModelHandle

    vgg = ModelHandle(torchvision.models.vgg19(weights=None), name="vgg19")
    style_layers, content_layer = default_layers(vgg)
    modules = [vgg.layer(name) for name in style_layers]
    assert all(isinstance(m, torch.nn.ReLU) for m in modules) and len(modules) == 5
    assert isinstance(vgg.layer(content_layer), torch.nn.ReLU)
    # conv4_2 is the 10th conv: its ReLU follows features.21
    assert isinstance(vgg.model.features[21], torch.nn.Conv2d) and content_layer == "features.22"


@pytest.mark.slow
def test_runs_on_fashion_cnn_and_lite0() -> None:
    fashion = zoo.load("fashion_cnn", device="cpu")
    shirt = torch.rand(1, 1, 28, 28)
    result = style_transfer(fashion, shirt, style=zoo.load_image("brick"), steps=5, progress=False)
    assert result.images.shape == (1, 1, 28, 28) and torch.isfinite(result.history["total"]).all()
    bigger = style_transfer(fashion, shirt, style=zoo.load_image("brick"), size=64, steps=3, progress=False)
    assert bigger.images.shape == (1, 1, 64, 64)  # the dense head (28 px only) is never run
    lite0 = zoo.load("efficientnet_lite0", device="cpu")
    before = state_snapshot(lite0)
    result = style_transfer(lite0, zoo.load_image("chelsea")[None], style=zoo.load_image("gravel"), size=96,
                            steps=10, progress=False)
    assert result.images.shape == (1, 3, 64, 96) and result.smoothing
    assert result.history["total"][-1, 0] < result.history["total"][0, 0]
    assert_unchanged(before, lite0)


@pytest.mark.parametrize("options, match", [
    ({"style": None}, "style image"),
    ({"style": torch.rand(3, 8)}, "style image must be"),
    ({"optimizer": "newton"}, "optimizer"),
    ({"init": "zeros"}, "init"),
    ({"steps": 0}, "steps"),
    ({"style_weight": -1.0}, "style_weight"),
    ({"temperature": 0.0}, "temperature"),
    ({"size": 2}, "size"),
    ({"style_layers": "conv9"}, "conv9"),
    ({"content_layer": ""}, None),
    ({"style_layers": ","}, "no style layer"),
])
def test_bad_inputs_raise(tiny: zoo.ModelHandle, options: dict, match: str | None) -> None:
    kwargs = {"style": torch.rand(3, 8, 8), "steps": 1, "progress": False, **options}
    if options == {"content_layer": ""}:  # empty means the default: runs
        style_transfer(tiny, torch.rand(1, 3, 16, 16, device=tiny.device), **kwargs)
        return
    with pytest.raises(CnnvizError, match=match):
        style_transfer(tiny, torch.rand(1, 3, 16, 16, device=tiny.device), **kwargs)


def test_bad_content_and_target_raise(tiny: zoo.ModelHandle) -> None:
    with pytest.raises(CnnvizError, match="content"):
        style_transfer(tiny, None, style=torch.rand(3, 8, 8))
    with pytest.raises(CnnvizError, match="target"):
        style_transfer(tiny, torch.rand(1, 3, 8, 8, device=tiny.device), 1, style=torch.rand(3, 8, 8))
    with pytest.raises(CnnvizError, match="channel"):
        style_transfer(tiny, torch.rand(1, 1, 8, 8, device=tiny.device), style=torch.rand(3, 8, 8))


@pytest.mark.slow
def test_cli_writes_files(tmp_path: object) -> None:
    code = main(["style", "--content", "chelsea", "--style", "gravel", "--size", "48", "--steps", "3",
                 "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    for suffix in (".png", "-panel.png", "-losses.png", ".json"):
        assert (tmp_path / f"chelsea-gravel{suffix}").is_file()
    report = json.loads((tmp_path / "chelsea-gravel.json").read_text())
    assert report["size"] == [32, 48] and report["smoothing"] is True
    assert set(report["final_losses"]) == {"content", "style", "tv", "total"}


@pytest.mark.parametrize("argv", [
    ["--content", "no-such-picture", "--style", "gravel"],
    ["--content", "chelsea", "--style", "gravel", "--steps", "0"],
    ["--content", "chelsea", "--style", "gravel", "--model", "no_such_model"],
    ["--content", "chelsea", "--style", "gravel", "--size", "3"],
])
def test_cli_bad_input_exits_2(tmp_path: object, argv: list[str], capsys: pytest.CaptureFixture) -> None:
    try:
        code = main(["style", *argv, "--device", "cpu", "--out", str(tmp_path)])
    except SystemExit as exit_info:  # argparse's own errors, range checks of flags included
        code = exit_info.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_cli_vgg19_without_weights_names_the_offline_backbone(tmp_path: object, capsys: pytest.CaptureFixture) -> None:
    from cnnviz.zoo.catalog import cached_weights_path

    if cached_weights_path("vgg19").is_file():
        pytest.skip("vgg19 weights are on this machine")
    assert main(["style", "--content", "chelsea", "--style", "gravel", "--model", "vgg19", "--device", "cpu",
                 "--out", str(tmp_path)]) == 2
    assert "efficientnet_lite0" in capsys.readouterr().err
