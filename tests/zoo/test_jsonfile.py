"""The one JSON writer: strict JSON, numpy/torch values, atomic, and the only one in the package."""

import json
import math
import re

import numpy as np
import pytest
import torch

from cnnviz.zoo.core import write_json
from tests.conftest import REPO


def test_writes_strict_json_with_arrays_and_no_nan(tmp_path):
    data = {"auc": math.nan, "inf": math.inf, "scores": torch.tensor([0.5, 1.0]), "n": np.int64(3),
            "array": np.arange(3), "path": tmp_path, "name": "café"}
    path = write_json(tmp_path / "out" / "x.json", data)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "auc": None, "inf": None, "scores": [0.5, 1.0], "n": 3, "array": [0, 1, 2], "path": str(tmp_path),
        "name": "café"}
    assert text.endswith("\n") and "café" in text
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "x.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object.__new__(type("Bad", (), {"__str__": None}))})
    assert json.loads(path.read_text()) == {"a": 1}


# json.dumps that writes no file: a card's content key (hashed), values embedded in the gallery's HTML, and an audit
# run's settings turned into the plain JSON values they are compared with once stored.
NOT_WRITERS = {"gallery/cards.py": 1, "gallery/site.py": 1, "interpret/audit/run.py": 1}


def test_no_other_json_writer_in_the_package():
    found: dict[str, int] = {}
    for package in ("cli", "gallery", "interpret", "zoo"):
        for file in (REPO / "cnnviz" / package).rglob("*.py"):
            name = file.relative_to(REPO / "cnnviz").as_posix()
            if name != "zoo/core/jsonfile.py":
                count = len(re.findall(r"json\.dumps?\(", file.read_text(encoding="utf-8")))
                if count:
                    found[name] = count
    assert found == NOT_WRITERS
