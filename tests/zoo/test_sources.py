"""Bring your own model: every source ``zoo.load`` and ``--model`` take, from Python and the CLI.

Each source is built here with random or locally saved weights (nothing downloaded): the handle's
logits equal the bare module's on the same normalized input, the CLI writes a Grad-CAM (where the
source has layer hooks) and an occlusion map, typos get the closest names, and the methods leave
these models as they found them.
"""

from __future__ import annotations

import json
import textwrap
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from cnnviz import interpret
from cnnviz import zoo
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError, hook_counts

FAST = ["--window", "16", "--stride", "16", "--input-size", "64"]
CLASSES = [f"thing{i}" for i in range(10)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-class ResNet checkpoint, its classes file, a user model file, TorchScript and exported programs."""
    root = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    torch.save({"state_dict": resnet.state_dict()}, root / "resnet10.pt")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "classes.json").write_text(json.dumps(CLASSES))
    (root / "user_model.py").write_text(textwrap.dedent('''
        from collections import OrderedDict
        import torch
        from torch import nn

        CNNVIZ_CONFIG = {"input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                         "classes": ["cat", "dog", "owl"], "default_layer": "features.2"}


        class Output(OrderedDict):
            """What HuggingFace models return: a dict whose entries are also attributes."""

            def __getattr__(self, name):
                try:
                    return self[name]
                except KeyError:
                    raise AttributeError(name) from None


        class Net(nn.Module):
            def __init__(self, width=8, num_classes=3, hf_output=False, bands=3):
                super().__init__()
                self.features = nn.Sequential(nn.Conv2d(bands, width, 3, padding=1), nn.ReLU(),
                                              nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(width, num_classes)
                self.hf_output = hf_output

            def forward(self, x):
                logits = self.fc(self.pool(self.features(x)).flatten(1))
                if self.hf_output:
                    return Output(loss=None, logits=logits, hidden_states=(x,))
                return logits


        def build(width=8, hf_output=False):
            torch.manual_seed(1)
            return Net(width, hf_output=hf_output).eval()


        def four_bands():
            torch.manual_seed(2)
            return Net(6, bands=4).eval()
    '''))
    scripted = torch.jit.trace(resnet, torch.rand(1, 3, 64, 64))
    torch.jit.save(scripted, str(root / "resnet10.ts"), _extra_files={
        "cnnviz_config.json": json.dumps({"input_size": 64, "mean": [0.485, 0.456, 0.406],
                                          "std": [0.229, 0.224, 0.225], "classes": CLASSES})})
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(resnet, (torch.rand(2, 3, 64, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(root / "resnet10.pt2"))
    torch.export.save(torch.export.export(resnet, (torch.rand(2, 3, 64, 64),)), str(root / "fixed-batch.pt2"))
    return root


def _bare_logits(module: nn.Module, handle: zoo.ModelHandle, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module((images - handle.mean) / handle.std)


def test_torchvision_checkpoint_with_classes_file_matches_the_bare_module(files):
    handle = zoo.load("torchvision:resnet18", device="cpu", weights=files / "resnet10.pt",
                      classes=files / "classes.txt", input_size=64)
    assert handle.classes == CLASSES and handle.config.num_classes == 10
    assert handle.default_layer == "layer4" and handle.input_size == 64
    assert handle.config.mean == (0.485, 0.456, 0.406)  # torchvision's own preprocessing, as data
    torch.manual_seed(0)
    bare = torchvision.models.resnet18(num_classes=10).eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(handle(images), _bare_logits(bare, handle, images), atol=1e-5)
    assert interpret.class_index(handle, "thing3") == 3
    with pytest.raises(CnnvizError, match="did you mean 'thing3'"):
        interpret.class_index(handle, "thinq3")


def test_the_checkpoint_says_how_many_classes_and_a_wrong_count_is_one_clear_line(files):
    handle = zoo.load("torchvision:resnet18", device="cpu", weights=files / "resnet10.pt")
    assert handle.config.num_classes == 10 and handle.classes is None  # ImageNet names would be wrong here
    with pytest.raises(CnnvizError, match=r"fc.weight is \(10, 512\) in the file but \(7, 512\) in the model"):
        zoo.load("torchvision:resnet18", weights=files / "resnet10.pt", num_classes=7)
    with pytest.raises(CnnvizError, match="keys differ"):
        zoo.load("torchvision:resnet34", weights=files / "resnet10.pt")


@pytest.mark.parametrize("source, expected", [
    ("torchvision:resnet81", "did you mean 'resnet18'"),
    ("timm:convnext_atoo", "did you mean 'convnext_atto'"),
    ("efficientnet_lite", "did you mean 'efficientnet_lite2'"),
    ("missing/model.py:build", "no Python file"),
    ("nowhere.pt2", "no model file"),
])
def test_a_typo_in_a_source_gets_the_closest_names(source, expected):
    with pytest.raises(CnnvizError, match=expected):
        zoo.load(source, weights=None)


def test_a_user_file_factory_with_its_config_and_arguments(files):
    handle = zoo.load(f"{files}/user_model.py:build", device="cpu", model_args={"width": 4})
    assert handle.classes == ["cat", "dog", "owl"] and handle.input_size == 32
    assert handle.default_layer == "features.2" and handle.model.fc.in_features == 4
    with pytest.raises(CnnvizError, match="did you mean 'build'"):
        zoo.load(f"{files}/user_model.py:biuld")
    with pytest.raises(CnnvizError, match="does not take these arguments"):
        zoo.load(f"{files}/user_model.py:build", model_args={"depth": 3})


def test_a_huggingface_style_output_gives_its_logits_and_selectors_work(files):
    handle = zoo.load(f"{files}/user_model.py:build", device="cpu", model_args={"hf_output": True})
    images = torch.rand(2, 3, 32, 32)
    raw = _bare_logits(handle.model, handle, images)
    with torch.no_grad():
        assert torch.equal(handle(images), raw["logits"])
        handle.output = "logits"
        assert torch.equal(handle(images), raw["logits"])
        handle.output = lambda out: out.logits * 2
        assert torch.equal(handle(images), raw["logits"] * 2)
        handle.output = "scores"
        with pytest.raises(CnnvizError, match="has no 'scores'; it has: hidden_states, logits, loss"):
            handle(images)
    handle.output = None
    cam = interpret.gradcam(handle, images, target="owl")
    assert cam.shape == (2, 1, 32, 32) and torch.isfinite(cam).all()


def test_torchscript_runs_input_methods_and_refuses_layer_methods_with_a_reason(files):
    handle = zoo.load(str(files / "resnet10.ts"), device="cpu")
    assert handle.classes == CLASSES and not handle.config.hookable
    images = torch.rand(2, 3, 64, 64)
    drops = interpret.occlusion(handle, images, window=16, stride=16)
    assert drops.shape == (2, 1, 64, 64) and torch.isfinite(drops).all()
    assert interpret.saliency(handle, images).shape == (2, 1, 64, 64)
    with pytest.raises(CnnvizError, match="take no hooks"):
        interpret.gradcam(handle, images, layer="layer4")


def test_an_exported_program_keeps_its_layers_for_hooks(files):
    handle = zoo.load(str(files / "resnet10.pt2"), device="cpu", classes=files / "classes.json")
    assert handle.classes == CLASSES and handle.config.fixed_input and handle.input_size == 64
    with pytest.raises(CnnvizError, match="takes only 64 px inputs"):
        zoo.load(str(files / "resnet10.pt2"), input_size=32)
    torch.manual_seed(0)
    bare = torchvision.models.resnet18(num_classes=10).eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(handle(images), bare(images), atol=1e-5)  # no normalization was configured
    cam = interpret.gradcam(handle, images, layer="layer4")
    reference = interpret.gradcam(zoo.wrap(bare, input_size=64), images, layer="layer4")
    assert torch.allclose(cam, reference, atol=1e-5)
    with pytest.raises(CnnvizError, match="fixed batch of 2"):
        zoo.load(str(files / "fixed-batch.pt2"))


def test_a_state_dict_given_as_a_model_says_where_it_belongs(files):
    with pytest.raises(CnnvizError, match="--weights"):
        zoo.load(str(files / "resnet10.pt"))


def test_timm_config_comes_from_its_pretrained_config_without_building():
    timm = pytest.importorskip("timm")
    config = zoo.model_config("timm:convnext_atto")
    data = timm.data.resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg("convnext_atto").to_dict())
    assert (config.input_size, config.mean, config.std) == (data["input_size"][-1], data["mean"], data["std"])
    assert config.resize_size == int(data["input_size"][-1] / data["crop_pct"])
    assert zoo.model_config("timm:vit_tiny_patch16_224").fixed_input
    assert not zoo.model_config("timm:convnext_atto").fixed_input
    assert zoo.model_config("torchvision:vit_b_16").fixed_input
    assert zoo.model_config("efficientnet_lite0").default_layer == "head"


def test_timm_convnext_from_a_checkpoint_matches_timm(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    bare = timm.create_model("convnext_atto", pretrained=False, num_classes=5).eval()
    torch.save(bare.state_dict(), tmp_path / "convnext.pt")
    handle = zoo.load("timm:convnext_atto", device="cpu", weights=tmp_path / "convnext.pt", input_size=64)
    assert handle.config.num_classes == 5 and handle.default_layer == "stages.3"
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(handle(images), _bare_logits(bare, handle, images), atol=1e-5)


def test_timm_pretrained_weights_come_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    from huggingface_hub import constants
    from safetensors.torch import save_file

    cfg = timm.models.get_pretrained_cfg("convnext_atto")
    with pytest.raises(CnnvizError, match="not in the local cache"):
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
        zoo.load("timm:convnext_atto")
    torch.manual_seed(3)
    cached = timm.create_model("convnext_atto", pretrained=False).eval()
    snapshot = tmp_path / "hub" / f"models--{cfg.hf_hub_id.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(cached.state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    handle = zoo.load("timm:convnext_atto", device="cpu", input_size=64)
    assert handle.classes is not None and handle.classes[967] == "espresso"
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(handle(images), _bare_logits(cached, handle, images), atol=1e-5)


@pytest.mark.parametrize("source, extra, methods", [
    ("torchvision:resnet18", ["--weights", "{files}/resnet10.pt", "--classes", "{files}/classes.txt",
                              "--target", "thing3"], ["gradcam", "occlusion"]),
    ("{files}/user_model.py:build", ["--model-args", '{"width": 6}', "--target", "owl"], ["gradcam", "occlusion"]),
    ("{files}/resnet10.pt2", [], ["gradcam", "occlusion"]),
    ("{files}/resnet10.ts", [], ["occlusion", "gradient"]),
])
def test_cli_explains_every_source(cli, files, tmp_path, source, extra, methods):
    source = source.replace("{files}", str(files))
    extra = [e.replace("{files}", str(files)) for e in extra]
    layer = ["--layer", "layer4"] if source.endswith(".pt2") else []
    out = tmp_path / "out"
    assert cli("explain", *methods, "--model", source, *extra, *layer, "-i", "chelsea", *FAST, "--out", out).code == 0
    written = {p.name for p in out.iterdir() if p.suffix == ".png"}
    assert all(any(m in name for name in written) for m in methods), written
    if "--target" in extra:  # the class asked for by name is the class explained
        wanted = extra[extra.index("--target") + 1]
        for sidecar in out.glob("*.json"):
            assert json.loads(sidecar.read_text())["target"]["name"] == wanted


def test_cli_refuses_a_layer_method_on_torchscript_in_one_line(files, tmp_path, cli):
    code, _, err = cli("explain", "gradcam", "--model", files / "resnet10.ts", "-i", "chelsea", "--input-size", "64",
                       "--out", tmp_path)
    err = err.strip()
    assert code == 2 and "\n" not in err and ("hooks" in err or "layer" in err)


def test_cli_layers_and_predict_take_any_source(files, cli):
    code, out, _ = cli("layers", "torchvision:resnet18", "--num-classes", "10", "--depth", "1", "--input-size", "64")
    assert code == 0
    assert "layer4" in out
    code, out, _ = cli("predict", "--model", "torchvision:resnet18", "--weights", files / "resnet10.pt",
                       "--classes", files / "classes.txt", "-i", "chelsea", "--input-size", "64")
    assert code == 0
    assert "thing" in out
    code, _, err = cli("predict", "--model", "torchvision:resnet18", "-i", "chelsea")
    assert code == 2
    assert "not on this machine" in err


ATTRIBUTION = [m.name for m in interpret.methods("attribution")]


@pytest.mark.parametrize("source, name", [("torchvision:resnet18", n) for n in ("gradcam", "occlusion", "gradient")]
                         + [("user", n) for n in ATTRIBUTION]
                         + [("export", n) for n in ("gradcam", "layercam", "fullgrad", "occlusion", "gradient",
                                                    "integrated_gradients")])
def test_methods_leave_a_brought_model_unchanged(files, source, name):
    if source == "export":
        handle = zoo.load(str(files / "resnet10.pt2"), device="cpu")
    else:
        handle = zoo.load(f"{files}/user_model.py:build" if source == "user" else source, device="cpu", weights=None)
    handle.train()
    method = interpret.get_method(name)
    fast = {"window": 16, "stride": 16, "steps": 2, "samples": 2, "masks": 8, "batch_size": 4}
    options = {k: v for k, v in fast.items() if k in method.options()}
    if method.uses_layer and source == "export":
        options["layer"] = "layer4"
    before, hooks = state_snapshot(handle), hook_counts(handle)
    if source == "export" and name == "fullgrad":  # an exported graph keeps no Conv2d modules to read biases from
        with pytest.raises(CnnvizError, match="biases"):
            method.fn(handle, torch.rand(2, handle.in_channels, 64, 64), 1, **options)
    else:
        result = method.fn(handle, torch.rand(2, handle.in_channels, 64, 64), 1, **options)
        assert torch.isfinite(result).all()
    assert_unchanged(before, handle)
    assert hook_counts(handle) == hooks


def test_a_cnnviz_train_folder_is_a_model(cli, tmp_path):
    from tests.zoo.test_training import _write_synthetic_idx

    data = _write_synthetic_idx(tmp_path / "data", n_train=200, n_test=50)
    run = tmp_path / "run"
    assert cli("train", "--data", data, "--channels", "4,8", "--dense", "16", "--epochs", "1", "--batch-size", "32",
               "--out", run, "--name", "toy", "--quiet", "--threads", "1").code == 0
    handle = zoo.load(str(run), device="cpu")
    log = json.loads((run / "toy-log.json").read_text())
    assert handle.classes == log["classes"] and handle.config.training_log == str(run / "toy-log.json")
    assert handle.config.mean == tuple(log["normalization"]["mean"]) and handle.input_size == 28
    assert handle.config.fixed_input  # a flatten before the dense layers
    out = tmp_path / "maps"
    assert cli("explain", "gradcam", "occlusion", "--model", run, "-i", "camera", "--window", "7", "--stride", "7",
               "--out", out).code == 0
    assert len(list(out.glob("*.png"))) == 2


def test_a_four_band_model_explains_a_four_band_array(cli, files, tmp_path):
    import numpy as np

    bands = np.random.default_rng(0).random((40, 48, 4)).astype(np.float32)
    np.save(tmp_path / "field.npy", bands)
    source = f"{files}/user_model.py:four_bands"
    handle = zoo.load(source, device="cpu", mean=(0.5,) * 4, std=(0.2,) * 4, input_size=32)
    image = zoo.load_image(tmp_path / "field.npy", channels=4)
    assert image.shape == (4, 40, 48) and torch.allclose(image[3], torch.from_numpy(bands[..., 3]))
    assert handle.prepare([image]).shape == (1, 4, 32, 32)
    out = tmp_path / "out"
    assert cli("explain", "gradcam", "occlusion", "--model", source, "--mean", "0.5,0.5,0.5,0.5",
               "--std", "0.2,0.2,0.2,0.2", "--input-size", "32", "-i", tmp_path / "field.npy",
               "--window", "8", "--stride", "8", "--out", out).code == 0
    assert len(list(out.glob("*.png"))) == 2


def test_config_overrides_are_checked():
    with pytest.raises(CnnvizError, match=r"std \(--std, std=\) must be positive"):
        zoo.load("efficientnet_lite0", device="cpu", std=(0.5, 0.0, 0.5))
    with pytest.raises(CnnvizError, match="3 class names for 1000 classes"):
        zoo.ModelConfig(classes=("a", "b", "c"), num_classes=1000)
    with pytest.raises(CnnvizError, match=r"input size \(--input-size, input_size=\) must be a positive whole number"):
        zoo.ModelConfig(input_size=0)
    with pytest.raises(CnnvizError, match="has 1000 classes"):
        zoo.load("efficientnet_lite0", device="cpu", num_classes=10)


def test_the_output_selector_errors_are_one_line():
    from cnnviz.zoo.handle import select_logits

    with pytest.raises(CnnvizError, match="not a tensor"):
        select_logits("text")
    with pytest.raises(CnnvizError, match="out of range"):
        select_logits((torch.ones(1, 2),), 3)
    assert select_logits(torch.ones(4)).shape == (4, 1)  # a binary classifier's single logit
    with pytest.raises(CnnvizError, match="not \\(batch, classes\\) logits"):
        interpret.saliency(zoo.wrap(nn.Conv2d(3, 2, 1)), torch.rand(1, 3, 4, 4))
    assert select_logits(OrderedDict(a=torch.ones(1, 2))).shape == (1, 2)


def test_the_gallery_builds_for_a_model_from_a_user_file(files, tmp_path):
    from cnnviz.gallery import Settings, build
    from tests.gallery.test_build import TINY

    report = build(tmp_path / "site", Settings(models=[f"{files}/user_model.py:build"], images=["chelsea"],
                                               budget=TINY), progress=False, log=lambda _: None)
    assert report.computed and not report.failed, report.failed
    assert any(p.name.startswith("model-") for p in (tmp_path / "site").glob("*.html"))


OTHERS = [m.name for m in interpret.methods() if m.family != "attribution"]


@pytest.mark.parametrize("name", OTHERS)
def test_every_other_method_leaves_a_model_from_a_user_file_unchanged(files, name):
    from tests.interpret.core.test_registry import _call, _tensors

    handle = zoo.load(f"{files}/user_model.py:build", device="cpu").train()
    before, hooks = state_snapshot(handle), hook_counts(handle)
    result = _call(interpret.get_method(name), handle, torch.rand(2, 3, 32, 32))
    assert _tensors(result) and all(torch.isfinite(t).all() for t in _tensors(result))
    assert_unchanged(before, handle)
    assert hook_counts(handle) == hooks


def test_reduced_precision_is_opt_in_and_close_to_fp32(lite0, photos):
    from cnnviz.interpret.evaluate.statistics import spearman

    assert lite0.precision == "fp32"
    fast = zoo.load("efficientnet_lite0", device="cpu", precision="bf16")
    with torch.no_grad():
        exact, rough = lite0(photos), fast(photos)
    assert rough.dtype == torch.float32 and torch.equal(rough.argmax(1), exact.argmax(1))
    # Occlusion on a coarse grid (16 windows): the property is bf16's closeness, not occlusion's resolution.
    for name, options in (("gradcam", {}), ("occlusion", {"window": 56, "stride": 56})):
        method = interpret.get_method(name)
        ours = method.fn(fast, photos, None, **options)
        assert ours.dtype == torch.float32
        reference = method.fn(lite0, photos, None, **options)
        assert float(spearman(ours.flatten(1), reference.flatten(1)).min()) > 0.9, name
    with pytest.raises(CnnvizError, match="fp16 runs on GPUs only"):
        zoo.load("efficientnet_lite0", device="cpu", precision="fp16")
