"""Hardening at the door: hostile files, broken contracts and unwritable folders get one clear line.

Each case is a class of input seen to break cnnviz (issue 16): a FIFO that would block, a small PNG that
declares hundreds of megapixels, NaN and negative images, a 5000 x 2 strip, uint8 or 0-255 batches, a
wrong size for a fixed-input model, weights on the meta device, an output folder that cannot exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.cli.main import main
from cnnviz.zoo.core import CnnvizError


def test_hostile_image_files_are_refused_in_one_line(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(CnnvizError, match="not a regular file"):
        zoo.load_image(fifo)  # would block forever if opened
    for side, message in ((9000, "declares 9000 x 9000 pixels"), (20000, "decompression bomb")):
        bomb = tmp_path / f"bomb{side}.png"
        Image.new("1", (side, side)).save(bomb)  # a small file claiming tens or hundreds of megapixels
        with pytest.raises(CnnvizError, match=message):
            zoo.load_image(bomb)
    nan = np.full((8, 8, 3), np.nan, np.float32)
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(CnnvizError, match="NaN"):
        zoo.load_image(tmp_path / "nan.npy")
    with pytest.raises(CnnvizError, match="negative"):
        zoo.load_image(np.full((4, 4), -5, np.int32))
    with pytest.raises(CnnvizError, match="got NoneType"):
        zoo.load_image(None)
    with pytest.raises(CnnvizError, match="float in \\[0, 1\\]"):
        zoo.load_image(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_prepare_and_methods_refuse_what_breaks_their_contract(lite0):
    long_strip = torch.rand(3, 2, 5000)  # resizing it whole would take gigabytes
    assert lite0.prepare([long_strip]).shape == (1, 3, 224, 224)
    with pytest.raises(CnnvizError, match="empty"):
        lite0.prepare([torch.rand(3, 0, 10)])
    with pytest.raises(CnnvizError, match="divide"):
        interpret.gradcam(lite0, (torch.rand(1, 3, 64, 64) * 255).to(torch.uint8))
    with pytest.raises(CnnvizError, match="values from"):
        interpret.gradcam(lite0, torch.rand(1, 3, 64, 64) * 255)
    with pytest.raises(CnnvizError, match="empty"):
        interpret.gradcam(lite0, torch.rand(0, 3, 64, 64))
    with pytest.raises(CnnvizError, match="NaN"):
        interpret.occlusion(lite0, torch.full((1, 3, 64, 64), float("nan")))
    fixed = zoo.load("fashion_cnn", device="cpu")
    with pytest.raises(CnnvizError, match="takes only 28 x 28 images"):
        interpret.saliency(fixed, torch.rand(1, 1, 32, 32))
    with pytest.raises(CnnvizError, match="meta device"):
        interpret.saliency(torchvision.models.resnet18().to("meta"), torch.rand(1, 3, 32, 32))


def test_an_unwritable_out_folder_is_one_line_exit_2(tmp_path, cli):
    import os

    if os.geteuid() == 0:
        blocked = tmp_path / "file"
        blocked.write_text("x")
        out = blocked / "sub"  # a path under a regular file: not a directory, whoever you are
    else:
        out = tmp_path / "locked"
        out.mkdir(mode=0o500)
    code, _, err = cli("explain", "gradient", "-i", "chelsea", "--out", out / "deeper")
    err = err.strip()
    assert code == 2 and "\n" not in err and "error" in err


def test_helpers_that_run_the_model_leave_batch_norm_statistics_alone():
    from cnnviz.interpret.core.activations import layer_output
    from cnnviz.interpret.evaluate.faithfulness import randomization_check
    from cnnviz.interpret.optimize.actmax import class_scores
    from cnnviz.interpret.optimize.inversion import inversion_scores
    from tests.conftest import assert_unchanged, state_snapshot

    torch.manual_seed(0)
    handle = zoo.wrap(torchvision.models.resnet18(num_classes=4), input_size=32).train()
    images = torch.rand(2, 3, 32, 32)
    before = state_snapshot(handle)
    layer_output(handle, "layer2", images)
    inversion_scores(handle, images, images.flip(-1), "layer2")
    class_scores(handle, images, [0, 1], top=2)
    randomization_check(handle, images, interpret.attribution.saliency, max_steps=1)
    assert_unchanged(before, handle)  # running means and variances of every BatchNorm included


@pytest.mark.parametrize("name", ["../../escape", "/tmp/absolute", "a/b", "./.."])
def test_a_name_holding_a_path_is_refused_before_any_work(tmp_path, cli, name):
    out = tmp_path / "out"
    code, _, err = cli("style", "--content", "chelsea", "--style", "brick", "--name", name, "--out", out,
                       "--size", "32", "--steps", "1")
    err = err.strip()
    assert code == 2 and "not a file name" in err and "\n" not in err
    assert list(tmp_path.rglob("*.png")) == [] and not Path("/tmp/absolute.png").exists()


def test_names_from_images_are_made_safe(cli, tmp_path):
    from PIL import Image

    hostile = tmp_path / "in" / '.hid "den"\nname.png'
    hostile.parent.mkdir()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(hostile)
    out = tmp_path / "out"
    assert cli("explain", "gradient", "-i", hostile, "--out", out).code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written and all(not n.startswith(".") and "\n" not in n and '"' not in n for n in written), written
    assert {p.parent for p in tmp_path.rglob("*") if p.is_file() and p.parent != hostile.parent} == {out}


def test_nan_weights_and_nan_results_are_refused(tmp_path):
    state = torchvision.models.resnet18(num_classes=3).state_dict()
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CnnvizError, match="NaN or infinite weights .*layer1.0.conv1.weight"):
        zoo.load("torchvision:resnet18", weights=tmp_path / "nan.pt")
    broken = torchvision.models.resnet18(num_classes=3).eval()
    with torch.no_grad():
        broken.fc.weight[0, 0] = float("nan")
    with pytest.raises(CnnvizError, match="gave NaN or infinite values"):
        interpret.saliency(zoo.wrap(broken, input_size=32), torch.rand(1, 3, 32, 32), 0)


def test_a_nan_score_behind_a_dead_unit_is_refused_though_its_gradients_are_finite():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(2, 3)).eval()
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.copy_(torch.tensor([-1.0, 1.0]))  # channel 0 is dead on every image
        net[4].weight[0, 0] = float("nan")
    images = torch.rand(1, 3, 8, 8, requires_grad=True)
    net(images)[0, 0].backward()
    assert torch.isfinite(images.grad).all()  # what the gradient alone would not show
    for method in (interpret.saliency, interpret.integrated_gradients, interpret.smoothgrad):
        with pytest.raises(CnnvizError, match="NaN or infinite values as the target's score"):
            method(zoo.wrap(net, input_size=8), images.detach(), 0)


def test_every_attribution_method_runs_on_the_28_px_model_with_its_defaults(cli, tmp_path):
    out = tmp_path / "out"
    assert cli("explain", "occlusion", "gradcam", "--model", "fashion_cnn", "-i", "camera", "--out", out).code == 0
    assert len(list(out.glob("*.png"))) == 2


def test_a_bad_file_in_an_atlas_folder_is_one_line_naming_it(tmp_path, cli):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (60 * i, 100, 30)).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    code, _, err = cli("atlas", "--model", "fashion_cnn", "--layer", "features.block1.act", "--data", folder,
                       "--top", "2", "--workers", "1", "--out", tmp_path / "out")
    err = err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "broken.png" in err, err


def test_a_channel_past_the_layer_and_a_plain_module_report_are_one_line(tmp_path, cli):
    code, _, err = cli("dream", "-i", "camera", "--model", "fashion_cnn", "--channel", "9999", "--steps", "1",
                       "--octaves", "1", "--no-progress", "--out", tmp_path)
    err = err.strip()
    assert code == 2 and "channels 0..127" in err and len(err.splitlines()) == 1
    from cnnviz.interpret.attack.adversarial import attack_report

    net = torchvision.models.resnet18(num_classes=3)
    report = attack_report(net, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert report.original.shape == (1,)


def test_hostile_checkpoints_are_one_line(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CnnvizError, match="is empty"):
        zoo.load("torchvision:resnet18", weights=empty)
    torch.save({1: torch.zeros(2), "fc.weight": torch.zeros(2)}, tmp_path / "keys.pt")
    with pytest.raises(CnnvizError, match="not layer names"):
        zoo.load("torchvision:resnet18", weights=tmp_path / "keys.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(CnnvizError, match="cannot read weights"):
        zoo.load("torchvision:resnet18", weights=tmp_path / "junk.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CnnvizError, match="not a state dict"):
        zoo.load("torchvision:resnet18", weights=tmp_path / "list.pt")


def test_style_transfer_refuses_nan_weights_from_python(lite0):
    with pytest.raises(CnnvizError, match="tv_weight must be a finite number"):
        interpret.style_transfer(lite0, torch.rand(1, 3, 32, 32), style=torch.rand(3, 32, 32),
                                 tv_weight=float("nan"), progress=False)


@pytest.mark.parametrize("args", [
    ["explain", "occlusion", "--image", "chelsea", "--window", "1000"],
    ["explain", "gradcam", "--image", "chelsea", "--layer", "classifier"],
    ["evaluate", "gradcam", "--image", "no-such-image.png"],
    ["featuremaps", "--image", "chelsea", "--layer", "classifier"],
    ["predict", "--image", "chelsea", "--mean", "0.5,0.5"],
], ids=["window", "cam-layer", "evaluate-image", "featuremaps-layer", "mean"])
def test_a_refused_run_is_one_line_and_leaves_no_folder(tmp_path, capsys, args):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)] if args[0] != "predict" else args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_the_rough_errors_name_what_was_wrong(tmp_path, capsys):
    assert main(["predict", "--image", "chelsea", "--mean", "0.5,0.5"]) == 2
    assert "first convolution 'stem.conv' takes 3 channels: give 3 values" in capsys.readouterr().err
    assert main(["predict", "--image", "chelsea", "--output", "nosuchkey"]) == 2
    err = capsys.readouterr().err
    assert "returns a plain tensor (1, 1000), so there is no 'nosuchkey' to pick" in err and "abs" not in err
    junk = tmp_path / "junk.pt2"
    import zipfile
    with zipfile.ZipFile(junk, "w") as archive:  # a zip, so torch gets as far as its deserializer
        archive.writestr("archive/data.pkl", b"junk")
    assert main(["predict", "--image", "chelsea", "--model", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "could not deserialize" in err
