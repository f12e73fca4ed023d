"""Statistics that cannot be computed are null with the reason, in every record the explorer serves: Grad-CAM on
fashion_cnn gives an all-zero map on many Fashion-MNIST items, and every answer, download and page about them is
valid JSON or says why, through the real ASGI app."""

from __future__ import annotations

import ast
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from cnnviz import zoo
from cnnviz.explorer import create_app
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.interpret.evaluate.explanation_json import ALL_ZERO
from tests.conftest import TinyCNN

EXPLORER = Path(__file__).resolve().parents[2] / "cnnviz" / "explorer"


def strict(text: str) -> object:
    """JSON as a browser's ``JSON.parse`` reads it: a bare NaN or Infinity is an error."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def client(fashion, fashion_mnist, tmp_path_factory):
    tiny = zoo.wrap(TinyCNN(), input_size=16, classes=["Bag", "bee", "cow"], default_layer="conv2", name="tiny")
    with TestClient(create_app([fashion, tiny], fashion_mnist, cache_dir=tmp_path_factory.mktemp("cache"))) as client:
        yield client


def test_forty_fashion_items_with_grad_cam_answer_records_that_are_json(client):
    """No 5xx; each all-zero map's record has null gini and entropy with the reason, its page says it and its
    colour bar shows one colour; the other records have finite numbers and no reason."""
    all_zero = []
    for index in range(40):
        answer = client.post("/api/explain", json={"image": f"data:{index}", "method": "gradcam"})
        assert answer.status_code == 200, answer.text
        found = strict(answer.text)
        download = client.get(found["files"]["record.json"] + "?download=1")
        assert download.status_code == 200 and strict(download.text) == found["record"]
        stats = found["record"]["map"]
        raw = np.load(io.BytesIO(client.get(found["files"]["map.npy"]).content), allow_pickle=False)
        if not raw.any():
            all_zero.append(index)
            assert stats["gini"] is None and stats["entropy"] is None and stats["undefined"] == ALL_ZERO
            page = client.get(f"/m/fashion_cnn/image/data:{index}/explain/gradcam")
            assert page.status_code == 200 and ALL_ZERO in page.text
            bar = np.asarray(Image.open(io.BytesIO(client.get(found["files"]["colorbar.png"]).content)))
            assert len(np.unique(bar[:200].reshape(-1, 3), axis=0)) == 1  # one colour, no pretended range
        else:
            assert math.isfinite(stats["gini"]) and math.isfinite(stats["entropy"]) and stats["undefined"] is None
    assert all_zero, "no all-zero map among the 40 items: the case this test is about did not occur"
    compared = client.post("/api/compare", json={"models": ["fashion_cnn", "tiny"], "image": f"data:{all_zero[0]}",
                                                 "method": "gradcam"})
    assert compared.status_code == 200, compared.text
    ours = next(r for r in strict(compared.text)["results"] if r["model"] == "fashion_cnn")
    assert ours["record"]["map"]["gini"] is None and ours["record"]["map"]["undefined"] == ALL_ZERO
    assert client.get(f"/compare/fashion_cnn/tiny/image/data:{all_zero[0]}/explain/gradcam").status_code == 200
    key = client.post("/api/explain", json={"image": f"data:{all_zero[0]}", "method": "gradcam"}).json()["key"]
    curves = client.post("/api/faithfulness", json={"key": key, "steps": 4})
    assert curves.status_code == 200, curves.text
    found = strict(curves.text)
    assert found["insertion_auc"] is None and found["deletion_auc"] is None and "constant" in found["undefined"]


def test_an_answer_never_holds_nan():
    body = JSONResponse({"gini": float("nan"), "scores": np.array([1.0, np.inf]), "n": np.int64(2)}).body
    assert strict(body.decode()) == {"gini": None, "scores": [1.0, None], "n": 2}


def test_every_explorer_module_answers_json_through_the_strict_response():
    """One place: no module of the explorer builds Starlette's own JSONResponse."""
    bad = []
    for path in sorted(EXPLORER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("starlette") and \
                    any(alias.name == "JSONResponse" for alias in node.names):
                bad.append(f"{path.relative_to(EXPLORER)}:{node.lineno}")
    assert not bad, "import JSONResponse from cnnviz.explorer.json_response: " + ", ".join(bad)
