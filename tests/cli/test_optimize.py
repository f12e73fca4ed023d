"""cnnviz actmax / invert / dream: files and JSON scores written, bad input is one line and exit code 2."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnviz.cli.main import main


def test_actmax_writes_pictures_sheet_and_scores(tmp_path, capsys):
    code = main(["actmax", "--model", "fashion_cnn", "--target", "Trouser", "Bag", "--steps", "40",
                 "--no-progress", "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0
    report = json.loads((tmp_path / "actmax.json").read_text())
    assert report["classes"] == [1, 8] and len(report["probability"]) == 2
    assert all(p > 0.5 for p in report["probability"])  # the optimization worked on the generating model
    assert {p.name for p in tmp_path.iterdir()} == {"actmax.json", "actmax.png", "actmax-Trouser.png",
                                                    "actmax-Bag.png"}
    assert np.asarray(Image.open(tmp_path / "actmax-Bag.png")).shape[:2] == (28, 28)


def test_actmax_on_units_reports_activations(tmp_path):
    code = main(["actmax", "--model", "fashion_cnn", "--unit", "features.block2.act:0-2", "--steps", "10",
                 "--no-progress", "--out", str(tmp_path), "--device", "cpu"])
    report = json.loads((tmp_path / "actmax.json").read_text())
    assert code == 0 and report["targets"] == [f"features.block2.act:{c}" for c in range(3)]
    assert len(report["channel_mean_activation"]) == 3


def test_invert_writes_a_row_per_image_with_errors_per_layer(tmp_path):
    code = main(["invert", "--model", "fashion_cnn", "-i", "camera", "--layer", "features.block1.act",
                 "features.block3.act", "--steps", "30", "--no-progress", "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0
    report = json.loads((tmp_path / "camera-invert.json").read_text())
    layers = report["layers"]
    assert list(layers) == ["features.block1.act", "features.block3.act"]
    assert all(0 <= entry["error"] < 1 and isinstance(entry["class_kept"], bool) for entry in layers.values())
    assert (tmp_path / "camera-invert.png").exists()


def test_dream_writes_the_photo_at_the_requested_size(tmp_path):
    code = main(["dream", "--model", "fashion_cnn", "-i", "coffee", "--size", "64", "--octaves", "2", "--steps",
                 "4", "--no-progress", "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0
    report = json.loads((tmp_path / "coffee-dream.json").read_text())
    assert report["size"] == [43, 64]
    assert report["mean_squared_activation"]["after"] > report["mean_squared_activation"]["before"]
    assert np.asarray(Image.open(tmp_path / "coffee-dream.png")).shape[:2] == (43, 64)


@pytest.mark.parametrize("argv,message", [
    (["actmax", "--model", "fashion_cnn"], "one of the arguments --target/-t --unit is required"),
    (["actmax", "--model", "fashion_cnn", "--target", "Trousers"], "did you mean 'Trouser'"),
    (["actmax", "--model", "fashion_cnn", "--unit", "features.block2.act:99"], "out of range"),
    (["invert", "--model", "fashion_cnn", "-i", "camera", "--layer", "features.blok1"], "did you mean"),
    (["dream", "--model", "fashion_cnn", "-i", "camera", "--octaves", "0"], "octaves"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, cli, argv, message):
    code, _, err = cli(*argv, "--out", tmp_path, "--device", "cpu")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
