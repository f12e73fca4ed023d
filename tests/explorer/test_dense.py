"""The explorer on the shipped segmentation and detection models, through Starlette's TestClient: a region or a
box is explained as the Python API explains it, the image comes back with it drawn, bad regions and boxes get a
one-line 400."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.explorer import create_app
from cnnviz.zoo.data import fashion_scenes
from tests.conftest import needs_fashion

pytestmark = needs_fashion


@pytest.fixture(scope="module")
def scene():
    scenes = fashion_scenes(1, split="test", canvas=64, items=(2, 2), seed=7)
    buffer = io.BytesIO()
    Image.fromarray((scenes.images[0, 0] * 255).round().byte().numpy()).save(buffer, format="PNG")
    return scenes, buffer.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(["fashion_seg", "fashion_det"], device="cpu",
                               cache_dir=tmp_path_factory.mktemp("cache"))) as client:
        yield client


def upload(client, scene_png, **fields):
    fields = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}
    return client.post("/api/explain", files={"image": ("scene.png", scene_png, "image/png")}, data=fields)


def npy_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_a_box_of_the_detector_is_explained_as_the_python_api_does(client, scene):
    scenes, png = scene
    options = {"window": 16, "stride": 8}
    answer = upload(client, png, model="fashion_det", method="occlusion", box=1, options=options)
    assert answer.status_code == 200, answer.text
    record = answer.json()["record"]
    assert record["task"] == "detection" and record["explained"].startswith("box [")
    det = zoo.load("fashion_det", device="cpu")
    image = scenes.images[:1]
    target = interpret.dense_target(det, image, box=1)
    expected = interpret.get_method("occlusion").fn(det, image, target, **options)[0].numpy()
    np.testing.assert_allclose(npy_of(client.get(answer.json()["files"]["map.npy"])), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert record["score"] == pytest.approx(float(target(det(image))[0]), rel=1e-5)
    drawn = np.asarray(Image.open(io.BytesIO(client.get(answer.json()["files"]["image.png"]).content)))
    assert drawn.ndim == 3 and (drawn[..., 0] != drawn[..., 1]).any()  # the boxes are drawn in colour on gray
    panel = client.get(answer.json()["files"]["panel.png"])
    assert panel.status_code == 200 and panel.headers["content-type"] == "image/png"
    curves = client.post("/api/faithfulness", json={"key": answer.json()["key"], "steps": 4})
    assert curves.status_code == 200 and len(curves.json()["deletion"]) == 5, curves.text


def test_a_region_of_the_segmenter_is_explained_over_its_pixels(client, scene):
    scenes, png = scene
    category = int(scenes.labels[0][0]) + 1
    answer = upload(client, png, model="fashion_seg", method="gradcam", target=category, region="0,0,40,32")
    assert answer.status_code == 200, answer.text
    seg = zoo.load("fashion_seg", device="cpu")
    expected = interpret.gradcam(seg, scenes.images[:1], interpret.region_target(seg, scenes.images[:1], category,
                                                                                  region=(0, 0, 40, 32)))
    np.testing.assert_allclose(npy_of(client.get(answer.json()["files"]["map.npy"])), expected[0].numpy(),
                               rtol=1e-4, atol=1e-6)
    assert answer.json()["record"]["explained"] == f"{seg.class_name(category)} over 1280 px"


def test_predict_gives_pixel_shares_of_a_segmenter_and_best_scores_of_a_detector(client, scene):
    scenes, png = scene
    image = scenes.images[:1]
    name = upload(client, png, model="fashion_seg", method="gradient", target=1, region="0,0,8,8").json()["record"]["image"]
    seg, det = zoo.load("fashion_seg", device="cpu"), zoo.load("fashion_det", device="cpu")
    with torch.no_grad():
        shares = torch.bincount(seg(image)[0].argmax(0).flatten(), minlength=11).float() / 64 / 64
        found = det(image)[0]
    top = client.post("/api/predict", json={"model": "fashion_seg", "image": name, "top": 11}).json()["top"]
    assert {row["index"]: row["probability"] for row in top} == pytest.approx(dict(enumerate(shares.tolist())))
    top = client.post("/api/predict", json={"model": "fashion_det", "image": name, "top": 1}).json()["top"]
    best = found[found[:, 5] >= 0][0]
    assert top[0]["index"] == int(best[5]) and top[0]["probability"] == pytest.approx(float(best[4]))


@pytest.mark.parametrize("fields, words", [
    ({"model": "fashion_det", "method": "gradient", "box": 0}, "box is a detection number from 1"),
    ({"model": "fashion_det", "method": "gradient", "box": 99}, "detection 99 was asked for"),
    ({"model": "fashion_seg", "method": "gradient", "target": 1, "region": "1,2"}, "region is four numbers"),
    ({"model": "fashion_seg", "method": "gradient", "target": 1, "region": "0,0,90,20"}, "not inside the 64 x 64"),
    ({"model": "fashion_seg", "method": "gradient"}, "say which class to explain"),
])
def test_bad_regions_and_boxes_get_one_line_400(client, scene, fields, words):
    answer = upload(client, scene[1], **fields)
    assert answer.status_code == 400 and words in answer.text, answer.text
    assert "\n" not in answer.json()["error"]
    assert torch.is_grad_enabled()


def test_the_pages_take_a_region_or_a_detection_and_show_what_is_explained(client, scene):
    name = upload(client, scene[1], model="fashion_det", method="gradient", box=1).json()["record"]["image"]
    page = client.get(f"/m/fashion_det/image/{name}")
    assert page.status_code == 200 and 'name="box"' in page.text and "Why, by units" not in page.text
    assert 'name="region"' in client.get(f"/m/fashion_seg/image/{name}").text
    explained = client.get(f"/m/fashion_det/image/{name}/explain/gradcam?box=1")
    assert explained.status_code == 200 and "explaining <span id=\"explained\">box [" in explained.text
    assert 'name="box" value="1"' in explained.text
    region = client.get(f"/m/fashion_seg/image/{name}/explain/gradcam?target=1&region=0,0,32,32")
    assert region.status_code == 200 and "over 1024 px" in region.text
    refused = client.get(f"/m/fashion_det/image/{name}/explain/gradcam?box=42")
    assert refused.status_code == 400 and "detection 42 was asked for" in refused.text


def test_a_dense_record_download_is_byte_for_byte_what_cnnviz_explain_writes(tmp_path, monkeypatch):
    from cnnviz.cli.main import main
    from cnnviz.interpret.evaluate import explanation

    ticks = iter(range(10**6))
    monkeypatch.setattr(explanation, "clock", lambda: 0.25 * next(ticks))  # every timed call takes 0.25 s
    assert main(["explain", "gradient", "--model", "fashion_seg", "--device", "cpu", "--image", "chelsea", "--npy",
                 "--target", "1", "--region", "0,0,32,32", "--out", str(tmp_path / "cli")]) == 0
    with TestClient(create_app(["fashion_seg"], device="cpu", cache_dir=tmp_path / "cache")) as client:
        answer = client.post("/api/explain", json={"image": "chelsea", "model": "fashion_seg", "method": "gradient",
                                                   "target": 1, "region": "0,0,32,32"})
        assert answer.status_code == 200, answer.text
        served = client.get(answer.json()["files"]["record.json"])
    written = (tmp_path / "cli" / "chelsea-gradient.json").read_bytes()
    assert served.content == written
    record = json.loads(written)
    assert record["task"] == "segmentation" and record["explained"].endswith("over 1024 px")
    assert record["seconds"] == 0.25 and record["npy"] == "chelsea-gradient.npy"
