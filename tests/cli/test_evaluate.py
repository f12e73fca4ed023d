"""``cnnviz explain`` writes its results as data; ``cnnviz evaluate`` writes tables, curves and a chart."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnviz import zoo
from cnnviz.cli.main import main
from tests.conftest import REPO
from tests.interpret.inside.test_atlas_distributed import free_port

FAST = ["--curve-steps", "4", "--device", "cpu", "--model", "fashion_cnn"]


def strict(path):
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))


def test_explain_writes_a_json_beside_each_png(capsys, tmp_path):
    code = main(["explain", "gradcam", "gradient", "-i", "chelsea", "coffee", "--out", str(tmp_path), "--npy",
                 "--device", "cpu", "--model", "fashion_cnn", "--target", "3"])
    assert code == 0
    record = strict(tmp_path / "coffee-gradcam.json")
    handle = zoo.load("fashion_cnn", device="cpu")
    image = handle.prepare(zoo.load_image("coffee", channels=handle.in_channels)[None])
    probability = handle(image).softmax(-1)[0, 3].item()
    assert record["model"] == "fashion_cnn" and record["image"] == "coffee" and record["method"] == "gradcam"
    assert record["target"]["index"] == 3 and record["target"]["probability"] == pytest.approx(probability, abs=1e-5)
    assert record["layer"] == handle.default_layer and "upsample" in record["options"]
    saved = np.load(tmp_path / record["npy"])
    assert record["map"]["max"] == pytest.approx(float(saved.max()), rel=1e-6)
    assert record["png"] == "coffee-gradcam.png" and record["seconds"] >= 0
    assert strict(tmp_path / "chelsea-gradient.json")["layer"] is None


def test_evaluate_writes_json_csv_curves_and_a_chart(capsys, tmp_path):
    code = main(["evaluate", "gradcam", "guided_backprop", "-i", "chelsea", "coffee", "astronaut", *FAST,
                 "--metrics", "deletion_black", "insertion", "road", "randomization", "gini", "--randomize", "2",
                 "--out", str(tmp_path), "--csv", str(tmp_path / "table.csv"), "--bootstrap", "200"])
    out = capsys.readouterr().out
    assert code == 0 and "vs random" in out
    data = strict(tmp_path / "evaluation.json")
    assert data["methods"] == ["random", "gradcam", "guided_backprop"] and data["images"] == 3
    assert len(data["per_image"]) == 9
    rows = {(r["method"], r["metric"]): r for r in data["summary"]}
    cam = [r["scores"]["deletion_black"] for r in data["per_image"] if r["method"] == "gradcam"]
    assert rows["gradcam", "deletion_black"]["mean"] == pytest.approx(float(np.mean(cam)))
    assert rows["gradcam", "deletion_black"]["low"] <= rows["gradcam", "deletion_black"]["mean"] <= rows["gradcam", "deletion_black"]["high"]
    assert rows["random", "spearman_top"]["count"] == 0 and "random map" in rows["random", "spearman_top"]["notes"]
    with open(tmp_path / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(data["summary"]) and {"mean", "low", "high", "vs_baseline_mean"} <= set(table[0])
    curves = strict(tmp_path / "curves.json")["curves"]
    assert len(curves[0]["deletion_black"]) == 5 and len(curves[0]["road_morf"]) == 9
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_evaluate_scores_maps_from_a_folder(capsys, tmp_path):
    maps = tmp_path / "maps"
    assert main(["explain", "gradcam", "-i", "chelsea", "coffee", "--out", str(maps), "--npy", "--device", "cpu",
                 "--model", "fashion_cnn"]) == 0
    (maps / "coffee-gradcam.json").unlink()  # only the .npy files matter
    assert main(["evaluate", "gradcam", "--maps", str(maps), "-i", "chelsea", "coffee", *FAST, "--metrics",
                 "deletion_black", "gini", "--out", str(tmp_path / "a"), "--bootstrap", "100"]) == 0
    data = strict(tmp_path / "a" / "evaluation.json")
    assert data["methods"] == ["random", "gradcam"]  # the file maps are named gradcam too: computed ones win
    assert main(["evaluate", "--maps", str(maps), "-i", "chelsea", "coffee", *FAST, "--metrics", "deletion_black",
                 "--out", str(tmp_path / "b"), "--bootstrap", "100"]) == 0
    from_files = strict(tmp_path / "b" / "evaluation.json")
    computed = {r["image"]: r["scores"]["deletion_black"] for r in data["per_image"] if r["method"] == "gradcam"}
    read = {r["image"]: r["scores"]["deletion_black"] for r in from_files["per_image"] if r["method"] == "gradcam"}
    assert read == pytest.approx(computed, abs=1e-6)


@pytest.mark.parametrize("argv,message", [
    (["--curve-steps", "1"], "--curve-steps must be at least 2, got 1"),
    (["--level", "1.5"], "--level must be"),
    (["--bootstrap", "5"], "--bootstrap must be at least 100"),
    (["--perturbations", "0"], "--perturbations must be at least 1"),
    (["--infidelity-noise", "0"], "--infidelity-noise must be positive"),
    (["--images-per-batch", "0"], "--images-per-batch must be at least 1"),
    (["--maps", "no-such-folder"], "is not a folder"),
    (["--metrics", "rod"], "invalid choice: 'rod'"),
])
def test_evaluate_bad_input_is_one_line(cli, tmp_path, argv, message):
    code, _, err = cli("evaluate", "gradcam", "-i", "coffee", "--out", tmp_path, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "evaluation.json").exists()


def test_evaluate_without_a_method_or_maps_is_refused(capsys, tmp_path):
    assert main(["evaluate", "-i", "coffee", "--out", str(tmp_path)]) == 2
    assert "at least one METHOD" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_processes_write_the_single_process_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    common = ["-m", "cnnviz.cli.main", "evaluate", "gradient", "-i", "chelsea", "coffee", "astronaut", "rocket", "camera",
              *FAST, "--metrics", "deletion_black", "infidelity", "gini", "--perturbations", "2",
              "--images-per-batch", "2", "--bootstrap", "100"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    runs = {}
    for name, command in (("one", [sys.executable]), ("two", launcher)):
        done = subprocess.run([*command, *common, "--out", str(tmp_path / name)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = strict(tmp_path / name / "evaluation.json")
    assert runs["two"]["processes"] == 2 and runs["one"]["processes"] == 1
    assert runs["two"]["per_image"] == runs["one"]["per_image"] and runs["two"]["summary"] == runs["one"]["summary"]
