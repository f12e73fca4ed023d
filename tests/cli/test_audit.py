"""``cnnviz audit``: a folder audited into audit.json, items, maps and figures; a second run resumes; bad input
is one line, exit 2, and nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnviz.interpret.audit import load

CLASSES = ("T-shirt_top", "Trouser", "Pullover")  # fashion_cnn's classes, as folder names may spell them


def write_folder(root, classes=CLASSES, per_class=4, suffix=".png"):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(root / name / f"{i}{suffix}")
    return root


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    from cnnviz.cli.main import main

    data = write_folder(tmp_path_factory.mktemp("data") / "clothes")
    out = tmp_path_factory.mktemp("audit") / "out"
    argv = ["audit", "--model", "fashion_cnn", "--data", str(data), "--out", str(out), "--chunk", "5",
            "--concepts", "2", "--device", "cpu"]
    assert main(argv) == 0
    return data, out, argv


def test_audit_writes_the_schema_items_maps_and_figures(audited):
    data, out, _ = audited
    document = json.loads((out / "audit.json").read_text())
    assert document["schema"] == "cnnviz.audit/1" and document["data"]["kind"] == "folder"
    assert sorted(document["classes"]) == ["Pullover", "T-shirt/top", "Trouser"]
    members = [m for c in document["classes"]["Trouser"]["clusters"] for m in c["members"]]
    assert sorted(members) == [f"Trouser/{i}.png" for i in range(4)]  # ids: paths relative to --data
    found = load(out)
    assert found.items.label[found.items.row("Trouser/2.png")] == "Trouser"
    assert found.maps.shape == (12, 14, 14)  # 28 px pooled evenly
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"confusion.png", "reliability.png", "class-001-clusters.png", "class-001-embedding.png",
            "class-001-concepts.png"} <= figures
    crops = [c["item"] for c in document["classes"]["Trouser"]["concepts"][0]["crops"]]
    assert crops and set(crops) <= set(members)
    assert "report/class-trouser-c60687.html" in (out / "audit.html").read_text()  # the report, beside audit.json
    assert (out / "report" / "class-trouser-c60687.html").is_file()


def test_a_second_run_resumes_and_changes_nothing(cli, audited):
    _, out, argv = audited
    before = (out / "audit.json").read_bytes()
    code, stdout, _ = cli(*argv)
    # 3 chunks, 3 strategies and 3 concepts steps, the end
    assert code == 0 and "resuming" in stdout and "10 of 10 steps already done" in stdout
    assert (out / "audit.json").read_bytes() == before


def test_a_run_folder_of_another_model_is_refused(cli, audited):
    data, out, argv = audited
    code, _, err = cli(*argv, "--weights", "random")
    assert code == 2 and "holds an audit made with another model (fashion_cnn, other weights)" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no image files"),
    ("one", "one class only (Trouser)"),
    ("unknown", "classes the model does not know ('Banana')"),
    ("texts", "holds no image files"),
    ("broken", "not an image"),
    ("layer", "no-such-layer"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(cli, tmp_path, case, message):
    data = tmp_path / "data"
    data.mkdir()
    extra = []
    if case == "one":
        write_folder(data, ("Trouser",))
    elif case == "unknown":
        write_folder(data, ("Trouser", "Banana"))
    elif case == "texts":
        (data / "Trouser").mkdir()
        (data / "Trouser" / "notes.txt").write_text("not an image")
    elif case == "broken":
        write_folder(data, ("Trouser", "Pullover"))
        (data / "Trouser" / "9.png").write_text("not an image")
    elif case == "layer":
        write_folder(data)
        extra = ["--layer", "no-such-layer"]
    code, _, err = cli("audit", "--model", "fashion_cnn", "--data", data, "--out", tmp_path / "out", "--device",
                       "cpu", *extra)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
