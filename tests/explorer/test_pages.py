"""The pages through the real ASGI app: identical explanations asked at once are computed once, errors on a
page are pages in the site's frame with the way back (the API keeps its one line of JSON), class names are
matched as the OpenAPI says, the method switcher, the layer table by block, the feature-map grid and the
placeholders."""

from __future__ import annotations

import asyncio
import html
import io
import re
import threading
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app, work
from cnnviz.explorer.images import image_names

FIRST = image_names()[0]


@pytest.fixture(scope="module")
def client(fashion, tmp_path_factory):
    with TestClient(create_app([fashion], cache_dir=tmp_path_factory.mktemp("cache"))) as client:
        yield client


def counting(monkeypatch, pause: float = 0.0) -> list[str]:
    """Record each method run the explorer makes (after ``pause`` seconds), by method name."""
    runs: list[str] = []
    real = work.interpret.explain_one
    lock = threading.Lock()

    def explain_one(handle, method, *args, **kwargs):
        with lock:
            runs.append(method.name)
        time.sleep(pause)
        return real(handle, method, *args, **kwargs)

    monkeypatch.setattr(work.interpret, "explain_one", explain_one)
    return runs


def test_identical_explanations_asked_at_once_are_computed_once(fashion, tmp_path, monkeypatch):
    runs = counting(monkeypatch, pause=0.5)
    app = create_app([fashion], cache_dir=tmp_path)
    body = {"image": "coffee", "method": "gradient", "target": "Bag"}

    async def at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/api/explain", json=body) for _ in range(3)),
                                        client.get("/m/fashion_cnn/image/coffee/explain/gradient?target=Bag"))

    answers = asyncio.run(at_once())
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert runs == ["gradient"]
    assert len({a.json()["key"] for a in answers[:3]}) == 1 and answers[0].json()["key"] in answers[3].text
    app.state.explorer.close()


def error_of(page: httpx.Response) -> str:
    """The one-line message an error page shows."""
    assert "text/html" in page.headers["content-type"], page.text
    found = re.search(r'<p class="error" id="error-message">(.*?)</p>', page.text, re.S)
    assert found, page.text
    return html.unescape(found.group(1))


ERROR_PAGES = {
    "unknown layer": ("/m/fashion_cnn/image/coffee/explain/gradcam?layer=features.nope", 400,
                      "no layer 'features.nope'",
                      ["/m/fashion_cnn/layers?image=coffee", "/m/fashion_cnn/image/coffee"]),
    "unknown class": ("/m/fashion_cnn/image/coffee/explain/gradcam?target=zebra", 400, "no class named 'zebra'",
                      ["/m/fashion_cnn/image/coffee"]),
    "unknown model": ("/m/ghost/image/coffee", 404, "no model 'ghost'", ["/m/fashion_cnn/image/coffee"]),
    "unknown image": ("/m/fashion_cnn/image/nothing.jpg/explain/gradcam", 400, "unknown image 'nothing.jpg'",
                      [f"/m/fashion_cnn/image/{FIRST}"]),
    "unknown page": ("/m/fashion_cnn/nowhere", 404, "Not Found", [f"/m/fashion_cnn/image/{FIRST}"]),
    "bad option": ('/m/fashion_cnn/image/coffee/explain/occlusion?options={"window": 0}', 400,
                   "window must be at least 1", ["/m/fashion_cnn/image/coffee"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_PAGES))
def test_an_error_on_a_page_is_a_page_with_the_way_back(client, case):
    path, status, words, links = ERROR_PAGES[case]
    answer = client.get(path)
    assert answer.status_code == status and "text/html" in answer.headers["content-type"], answer.text
    message = error_of(answer)
    assert words in message and "\n" not in message
    assert '<header>' in answer.text and '<a id="back-home" href="/">' in answer.text  # the site's frame
    for link in links:
        assert f'href="{link}"' in answer.text, (link, answer.text)
    if case == "unknown image":
        assert 'href="/m/fashion_cnn/image/nothing.jpg"' not in answer.text  # no link back into the error


def test_the_api_keeps_its_one_line_of_json(client):
    for answer in (client.get("/api/models/ghost/layers"), client.get("/api/nowhere"),
                   client.post("/api/explain", json={"image": "coffee", "method": "gradcam", "layer": "features.no"})):
        assert answer.headers["content-type"] == "application/json" and set(answer.json()) == {"error"}
    layer = client.post("/api/explain", json={"image": "coffee", "method": "gradcam", "layer": "features.no"})
    assert "/m/fashion_cnn/layers" in layer.json()["error"] and "cnnviz layers" not in layer.json()["error"]


def test_class_names_are_matched_as_the_openapi_says(client, fashion):
    said = client.get("/api/openapi.json").text
    assert "(part of) a class name" in said
    part = client.post("/api/explain", json={"image": "coffee", "method": "gradcam", "target": "trous"})
    assert part.status_code == 200 and part.json()["record"]["target"]["name"] == "Trouser"
    several = client.post("/api/explain", json={"image": "coffee", "method": "gradcam", "target": "shirt "})
    assert several.json()["record"]["target"]["name"] == "Shirt"  # the whole name, not 'T-shirt/top'
    refused = client.post("/api/explain", json={"image": "coffee", "method": "gradcam", "target": "s"})
    assert refused.status_code == 400 and "'Sandal'" in refused.json()["error"] and \
        "give more of the name" in refused.json()["error"]


def png_at(client, url: str) -> np.ndarray:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB")).astype(int)


def test_a_signed_map_shows_zero_on_a_diverging_scale(client):
    """Occlusion's map has both signs: its colour bar is near white at zero, blue below and red above, and the
    page says so; Grad-CAM's (never negative) keeps the one-hue scale."""
    for method, signed in (("occlusion", True), ("gradcam", False)):
        answer = client.post("/api/explain", json={"image": "coffee", "method": method})
        key, raw = answer.json()["key"], np.load(io.BytesIO(client.get(answer.json()["files"]["map.npy"]).content))
        assert (raw.min() < 0) == signed
        bar = png_at(client, f"/api/results/{key}/colorbar.png")[:, 0]  # the scale's first column, top to bottom
        whitish = (bar.min(axis=1) > 230) & (np.ptp(bar, axis=1) < 12)
        assert whitish.any() == signed
        if signed:
            assert bar[0, 0] > bar[0, 2] + 100 and bar[-1, 2] > bar[-1, 0] + 100  # red at the top, blue below
        page = client.get(f"/m/fashion_cnn/image/coffee/explain/{method}").text
        assert ("blue below zero, red above" in page) == signed


def test_the_layer_table_is_grouped_by_stage_with_batchnorm_hidden(client, fashion):
    page = client.get("/m/fashion_cnn/layers?image=coffee").text
    overview = re.search(r'<ol class="stages" id="stages">(.*?)</ol>', page, re.S).group(1)
    assert re.findall(r"<b>(.*?)</b>", overview) == ["input", "features.block1", "features.block2", "features.block3",
                                                      "classifier"]
    assert "16 × 14 × 14" in overview and "10" in overview  # what each stage hands on, without the batch
    assert re.search(r"<b>input</b>.*1 × 28 × 28", overview, re.S)
    table = interpret.layer_table(fashion)
    batchnorm = [r.name for r in table if r.type.startswith(("BatchNorm", "Identity"))]
    hidden = re.findall(r'<tr class="skippable[^"]*"><td[^>]*>(?:<a[^>]*>)?([^<]+)', page)
    assert hidden == batchnorm and len(batchnorm) == 4 and '<table id="layer-table" class="compact">' in page
    assert f"({len(batchnorm)} BatchNorm and Identity layers are" in page
    shown = re.findall(r'<tr class="[^"]*"><td[^>]*>(?:<a[^>]*>)?([^<]+)', page)
    assert shown == [r.name for r in table if r.name]  # every layer is in the table, in order


def test_the_feature_map_grid_says_how_many_and_is_ordered_by_what_it_prints(client):
    page = client.get("/m/fashion_cnn/layers/features.block2?image=coffee").text
    assert "the top 32 of 64 channels" in page and "ordered by mean activation" in page
    means = [float(m) for m in re.findall(r'<span class="mean">([^<]+)</span>', page)]
    assert len(means) == 32 and means == sorted(means, reverse=True) and means[0] > means[-1]
    small = client.get("/m/fashion_cnn/layers/features.block1?image=coffee").text
    assert "its 16 channels" in small and small.count('class="mean"') == 16


def test_hints_and_placeholders_read_as_people_write_them(client):
    ig = client.get("/m/fashion_cnn/image/coffee/explain/integrated_gradients").text
    baseline = re.search(r'<label title="([^"]*)"><span class="option-name">baseline</span>(.*?)</label>', ig, re.S)
    assert "probability" not in baseline.group(0) and "between 0 and 1" in baseline.group(2)
    assert html.unescape(baseline.group(1)) == interpret.get_method("integrated_gradients").options()["baseline"].help
    pgd = client.get("/m/fashion_cnn/image/coffee/optimize/pgd").text
    eps = re.search(r'data-option="eps"[^>]*placeholder="([^"]*)"', pgd, re.S).group(1)
    assert interpret.get_method("pgd").options()["eps"].default == 4 / 255 and eps == "4/255 ≈ 0.0157"
    assert "0.01568627450980392" not in pgd


def test_data_items_are_offered_with_their_labels_to_the_models_they_fit(fashion, tmp_path):
    from cnnviz.zoo.data import TensorImages
    from tests.conftest import TinyCNN

    labels = torch.tensor([8, 0, 9])
    data = TensorImages(torch.rand(3, 1, 28, 28), labels, fashion.classes, "garments")
    tiny = zoo.wrap(TinyCNN(), input_size=16, classes=["ant", "bee", "cow"], name="tiny")
    with TestClient(create_app([fashion, tiny], data=data, cache_dir=tmp_path)) as client:
        page = client.get("/m/fashion_cnn/image/coffee").text
        offered = re.findall(r'<option value="(data:\d+)"[^>]*>([^<]*)</option>', page)
        assert offered == [(f"data:{i}", f"data:{i} · #{i} {fashion.classes[int(label)]}")
                           for i, label in enumerate(labels)]
        assert 'value="data:' not in client.get("/m/tiny/image/coffee").text  # ants, bees, cows: not garments
