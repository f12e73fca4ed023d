"""``cnnviz dissect``: dissection.json through the output folder, the table, bad input in one line."""

from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from cnnviz.interpret.inside import Dissection
from tests.conftest import needs_fashion


@needs_fashion
def test_dissect_writes_dissection_json_and_a_table(cli, tmp_path):
    code, out, err = cli("dissect", "--model", "fashion_seg", "--layer", "features.3", "--data", "fashion-scenes:40",
                         "--device", "cpu", "--out", tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "dissection.json").read_text())
    assert {"units", "threshold", "layer", "fingerprint", "concepts", "counts"} <= set(record)
    assert all(set(u) >= {"channel", "concept", "iou", "detector"} for u in record["units"])
    found = Dissection.from_json(record)
    assert len(found.units) == 32 and found.threshold.quantile == 0.005
    for concept, count in found.counts.items():  # the table prints what the file holds
        assert any(re.match(rf"{re.escape(concept)}\s+{count}\s", line) for line in out.splitlines()), (concept, out)
    assert out.strip().splitlines()[-1] == str(tmp_path / "dissection.json")


def test_dissect_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    code, _, err = cli("dissect", "--model", "fashion_seg", "--layer", "features.3", "--data", tmp_path / "images",
                       "--device", "cpu", "--out", tmp_path / "out")
    assert code == 2 and "holds no image files" in err and len(err.strip().splitlines()) == 1
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "images" / "a.png")
    code, _, err = cli("dissect", "--model", "fashion_seg", "--layer", "features.3", "--data", tmp_path / "images",
                       "--device", "cpu", "--out", tmp_path / "out")
    assert code == 2 and "no mask for 1 of 1 images (a.png)" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("dissect", "--model", "fashion_seg", "--data", "fashion-scenes", "--quantile", "1.5")
    assert code == 2 and "--quantile" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_dissect_help_teaches_the_format(cli):
    code, out, _ = cli("dissect", "--help")
    assert code == 0 and "concepts.txt" in out and "masks/STEM.png" in out and "fashion-scenes" in out
