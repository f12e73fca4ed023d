"""The explorer's JSON API and pages through Starlette's TestClient: maps equal the Python API's and what
``cnnviz explain`` writes, hostile input gets a one-line 4xx while the server keeps serving, the token, the
compute queue and the bounded result cache."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.explorer import create_app
from cnnviz.explorer.compute_queue import ComputeQueue
from cnnviz.explorer.images import MAX_UPLOAD_BYTES
from cnnviz.explorer.result_cache import ResultCache
from tests.conftest import assert_unchanged, state_snapshot
from tests.explorer.test_pages import error_of


@pytest.fixture(scope="module")
def client(fashion, tmp_path_factory):
    with TestClient(create_app([fashion], cache_dir=tmp_path_factory.mktemp("cache"))) as client:
        yield client


def npy_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def png_of(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


@pytest.mark.parametrize("method, options", [("gradcam", {}), ("occlusion", {"window": 8, "stride": 4}),
                                             ("smoothgrad", {"samples": 4, "seed": 3})])
def test_a_map_equals_the_python_apis(client, fashion, method, options):
    answer = client.post("/api/explain", json={"image": "coffee", "method": method, "target": "Bag",
                                               "options": options})
    assert answer.status_code == 200, answer.text
    served = npy_of(client.get(answer.json()["files"]["map.npy"]))
    batch = fashion.prepare([zoo.load_image("coffee", channels=1)])
    expected = interpret.get_method(method).fn(fashion, batch, "Bag", **options)[0].numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-7)
    assert answer.json()["record"]["target"]["name"] == "Bag"
    assert answer.json()["record"]["options"] == {**{k: p.default for k, p in
                                                     interpret.get_method(method).options().items()}, **options}


def test_a_grad_cam_on_efficientnet_lite0_equals_the_python_apis(lite0, photos, tmp_path):
    with TestClient(create_app([lite0], cache_dir=tmp_path)) as client:
        answer = client.post("/api/explain", json={"image": "chelsea", "method": "gradcam", "layer": "blocks.5"})
        served = npy_of(client.get(answer.json()["files"]["map.npy"]))
    expected = interpret.gradcam(lite0, photos[:1], layer="blocks.5")[0].cpu().numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    assert answer.json()["record"]["predicted"]["name"] == "tiger cat"


def test_downloads_equal_what_cnnviz_explain_writes(client, tmp_path):
    from cnnviz.cli.main import main

    assert main(["explain", "gradcam", "--model", "fashion_cnn", "--device", "cpu", "--image", "chelsea", "--npy",
                 "--out", str(tmp_path)]) == 0
    answer = client.post("/api/explain", json={"image": "chelsea", "method": "gradcam"}).json()
    written = json.loads((tmp_path / "chelsea-gradcam.json").read_text())
    served = client.get(answer["files"]["record.json"]).json()
    written.pop("seconds"), served.pop("seconds")
    assert served == written
    np.testing.assert_array_equal(npy_of(client.get(answer["files"]["map.npy"])),
                                  np.load(tmp_path / "chelsea-gradcam.npy"))
    np.testing.assert_array_equal(png_of(client.get(answer["files"]["panel.png"])),
                                  np.asarray(Image.open(tmp_path / "chelsea-gradcam.png")))
    download = client.get(answer["files"]["panel.png"] + "?download=1")
    assert 'filename="chelsea-gradcam.png"' in download.headers["content-disposition"]


def steady_clock(monkeypatch, step: float = 0.25) -> None:
    """Every timed call of the explain recipe takes ``step`` seconds, so two runs' records can be equal."""
    from cnnviz.interpret.evaluate import explanation

    ticks = iter(range(10**6))
    monkeypatch.setattr(explanation, "clock", lambda: step * next(ticks))


def test_the_record_download_is_byte_for_byte_what_cnnviz_explain_writes(fashion, tmp_path, monkeypatch):
    from cnnviz.cli.main import main

    steady_clock(monkeypatch)
    assert main(["explain", "occlusion", "--model", "fashion_cnn", "--device", "cpu", "--image", "chelsea", "--npy",
                 "--target", "Bag", "--window", "8", "--out", str(tmp_path / "cli")]) == 0
    with TestClient(create_app([fashion], cache_dir=tmp_path / "cache")) as client:
        answer = client.post("/api/explain", json={"image": "chelsea", "method": "occlusion", "target": "Bag",
                                                   "options": {"window": 8}}).json()
        served = client.get(answer["files"]["record.json"])
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.content == (tmp_path / "cli" / "chelsea-occlusion.json").read_bytes()
    assert json.loads(served.content)["seconds"] == 0.25


def test_a_repeated_request_comes_from_the_cache(client):
    request = {"image": "camera", "method": "occlusion", "options": {"window": 8, "stride": 8}}
    first = client.post("/api/explain", json=request).json()
    cached = client.get("/api/health").json()["cached_results"]
    again = client.post("/api/explain", json=request).json()
    assert again == first and client.get("/api/health").json()["cached_results"] == cached


def test_predict_and_evidence_agree_with_the_model(client, fashion):
    batch = fashion.prepare([zoo.load_image("coffee", channels=1)])
    with torch.no_grad():
        probs = fashion(batch).softmax(-1)[0]
    top = client.post("/api/predict", json={"image": "coffee", "top": 3}).json()["top"]
    assert [row["index"] for row in top] == probs.topk(3).indices.tolist()
    assert top[0]["probability"] == pytest.approx(float(probs.max()), rel=1e-5)
    answer = client.post("/api/evidence", json={"image": "coffee", "top": 4}).json()
    evidence = interpret.inside.unit_evidence(fashion, batch, layer=fashion.default_layer)[0].sum((1, 2))
    assert [c["channel"] for c in answer["channels"]] == evidence.argsort(descending=True)[:4].tolist()
    assert client.get(answer["channels"][0]["map"]).status_code == 200


def test_layers_and_a_unit(client, fashion):
    rows = client.get("/api/models/fashion_cnn/layers").json()["layers"]
    assert [r["name"] for r in rows] == [r.name for r in interpret.layer_table(fashion)]
    unit = client.get("/api/models/fashion_cnn/units/features.block2/5?image=coffee").json()
    maps = interpret.feature_maps(fashion, fashion.prepare([zoo.load_image("coffee", channels=1)]),
                                  layer="features.block2")[0, 5]
    assert unit["activation"]["max"] == pytest.approx(float(maps.max()), rel=1e-5)
    assert png_of(client.get(unit["map"])).ndim == 3


def test_an_upload_is_explained_like_the_same_sample(client, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(zoo.data.SAMPLES["coins"]()).save(buffer, format="PNG")
    uploaded = client.post("/api/explain", files={"image": ("coins.png", buffer.getvalue(), "image/png")},
                           data={"method": "gradient"})
    assert uploaded.status_code == 200, uploaded.text
    named = client.post("/api/explain", json={"image": "coins", "method": "gradient"}).json()
    np.testing.assert_array_equal(npy_of(client.get(uploaded.json()["files"]["map.npy"])),
                                  npy_of(client.get(named["files"]["map.npy"])))
    again = client.post("/api/predict", json={"image": uploaded.json()["record"]["image"]})
    assert again.status_code == 200


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, format="PNG")  # 81 M pixels in a few kB
    return buffer.getvalue()


HOSTILE = {
    "unknown model": ({"json": {"image": "chelsea", "method": "gradcam", "model": "evil.py:make"}}, 404, "no model"),
    "unknown method": ({"json": {"image": "chelsea", "method": "gradcam++"}}, 400, "method"),
    "unknown layer": ({"json": {"image": "chelsea", "method": "gradcam", "layer": "features.nope"}}, 400, "no layer"),
    "unknown class": ({"json": {"image": "chelsea", "method": "gradcam", "target": "zebra"}}, 400, "zebra"),
    "class out of range": ({"json": {"image": "chelsea", "method": "gradcam", "target": 10}}, 400, "10"),
    "option out of range": ({"json": {"image": "chelsea", "method": "occlusion", "options": {"window": 0}}}, 400,
                            "window must be at least 1"),
    "option NaN": ({"content": b'{"image": "chelsea", "method": "smoothgrad", "options": {"noise": NaN}}'}, 400,
                   "noise"),
    "option of the wrong type": ({"json": {"image": "chelsea", "method": "gradcam", "options": {"upsample": "yes"}}},
                                 400, "upsample"),
    "unknown option": ({"json": {"image": "chelsea", "method": "gradcam", "options": {"windows": 3}}}, 400,
                       "no option 'windows'"),
    "malformed JSON": ({"content": b'{"image": "chelsea",'}, 400, "not valid JSON"),
    "not an object": ({"json": ["chelsea"]}, 400, "JSON object"),
    "a path as image": ({"json": {"image": "/etc/passwd", "method": "gradcam"}}, 400, "unknown image"),
    "a relative path": ({"json": {"image": "../../../etc/passwd", "method": "gradcam"}}, 400, "unknown image"),
    "no image": ({"json": {"method": "gradcam"}}, 400, "image must be"),
    "data without --data": ({"json": {"image": "data:3", "method": "gradcam"}}, 400, "no data set"),
    "a non-image upload": ({"files": {"image": ("x.png", b"GIF89a not really", "image/png")},
                            "data": {"method": "gradcam"}}, 400, "not an image"),
    "a decompression bomb": ({"files": {"image": ("bomb.png", bomb(), "image/png")}, "data": {"method": "gradcam"}},
                             400, "pixels"),
    "an oversized upload": ({"files": {"image": ("big.png", b"\0" * (MAX_UPLOAD_BYTES + 1), "image/png")},
                             "data": {"method": "gradcam"}}, 413, "accepted"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_bad_input_gets_one_line_and_the_server_keeps_serving(client, case):
    request, status, words = HOSTILE[case]
    answer = client.post("/api/explain", **request)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error and "\n" not in error and "Traceback" not in error
    assert client.get("/api/health").json()["status"] == "ok"


@pytest.mark.parametrize("path", [
    "/api/results/..%2F..%2F..%2Fetc%2Fpasswd/map.npy", "/api/results/0123456789abcdef0123456789abcdef/..%2Fapp.py",
    "/api/results/0123456789abcdef0123456789abcdef/%2e%2e", "/api/maps/..%2F..%2Fapp.png", "/api/maps/....png",
    "/static/..%2Fapp.py", "/static/../app.py", "/static/%2e%2e/state.py", "/static/..%5Capp.py",
    "/m/fashion_cnn/image/..%2F..%2Fetc%2Fpasswd/picture.png", "/m/fashion_cnn/image/%2Fetc%2Fpasswd/picture.png",
    "/api/jobs/..%2F..%2Fapp.py/image.png", "/m/fashion_cnn/layers/..%2F..?image=chelsea",
    "/m/fashion_cnn/units/features.block2/0?image=..%2Fapp.py", "/api/jobs/..%2F..%2Fapp.py/image.npy",
    "/api/models/fashion_cnn/units/..%2F..%2Fatlas/0/patches", "/api/models/fashion_cnn/units/features.block2/..%2F1/patches",
    "/m/fashion_cnn/image/..%2F..%2Fetc%2Fpasswd/optimize/pgd", "/m/fashion_cnn/image/coffee/optimize/..%2Fapp.py",
    "/compare/fashion_cnn/..%2Fapp.py/image/coffee/explain/gradcam",
])
def test_path_traversal_on_every_file_route(client, path):
    answer = client.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code)
    assert b"import" not in answer.content and b"root:" not in answer.content
    assert client.get("/static/explorer.js").status_code == 200  # the real file is served


def test_pages_render_and_escape_names(tmp_path):
    torch.manual_seed(0)
    from tests.conftest import TinyCNN

    model = zoo.wrap(TinyCNN(), input_size=16, classes=["<script>alert(1)</script>", "bee", "cow"],
                     default_layer="conv2", name="tiny")
    with TestClient(create_app([model], cache_dir=tmp_path)) as client:
        pages = ["/m/tiny/image/chelsea", "/m/tiny/image/chelsea/explain/gradcam?target=0",
                 "/m/tiny/image/chelsea/why?target=0", "/m/tiny/layers?image=chelsea",
                 "/m/tiny/layers/conv2?image=chelsea", "/m/tiny/units/conv2/1?image=chelsea",
                 "/m/tiny/image/chelsea/optimize/pgd?target=0", "/m/tiny/image/chelsea/optimize/invert"]
        for page in pages:
            answer = client.get(page)
            assert answer.status_code == 200 and "text/html" in answer.headers["content-type"], page
            assert "<script>alert" not in answer.text, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(pages[1]).text
        assert client.get("/", follow_redirects=False).headers["location"] == "/m/tiny/image/chelsea"


def test_openapi_describes_every_api_route(client):
    document = client.get("/api/openapi.json").json()
    from cnnviz.explorer.routes import ROUTES

    assert document["openapi"].startswith("3.") and {r.path for r in ROUTES} <= set(document["paths"])


def test_a_token_is_required_when_set(fashion, tmp_path):
    with TestClient(create_app([fashion], cache_dir=tmp_path, token="s3cret")) as client:
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        page = client.get("/m/fashion_cnn/image/chelsea?token=s3cret")
        assert page.status_code == 200 and "cnnviz_token" in page.headers["set-cookie"]
        assert client.get("/api/health").status_code == 200  # the cookie the page set


def test_a_job_is_cancelled_and_the_model_left_as_found(fashion, tmp_path):
    before = state_snapshot(fashion)
    with TestClient(create_app([fashion], cache_dir=tmp_path)) as client:
        started = client.post("/api/jobs", json={"layer": "features.block2", "channel": 2, "steps": 5000,
                                                 "round_steps": 2})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        deadline = time.monotonic() + 20
        while client.get(f"/api/jobs/{job}").json()["step"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        client.post(f"/api/jobs/{job}/cancel")
        while client.get(f"/api/jobs/{job}").json()["state"] not in ("cancelled", "done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = client.get(f"/api/jobs/{job}").json()
        assert status["state"] == "cancelled" and 0 < status["step"] < 5000
        assert png_of(client.get(status["image"])).ndim in (2, 3)
        bad = client.post("/api/jobs", json={"layer": "features.block2", "channel": 1, "steps": 0})
        assert bad.status_code == 400 and "steps must be between 1 and 5000" in bad.json()["error"]
    assert_unchanged(before, fashion)


def test_the_compute_queue_runs_one_job_at_a_time():
    queue = ComputeQueue("cpu")
    running, most, lock = [0], [0], threading.Lock()

    def job(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.002)
        with lock:
            running[0] -= 1
        return i

    results = [None] * 40
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, queue.submit(lambda: job(i)).result()))
               for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.close()
    assert results == list(range(40)) and most[0] == 1 and queue.most_at_once == 1


def test_the_result_cache_stays_under_its_limit():
    cache = ResultCache(max_bytes=10_000)
    for i in range(500):
        cache.put(f"k{i}", np.zeros(i % 37 * 16, np.uint8))
        assert cache.size <= 10_000
    assert cache.get("k499") is not None and cache.get("k0") is None
    cache.put("huge", b"x" * 20_000)
    assert cache.get("huge") is None and cache.size <= 10_000


def test_a_first_layer_unit_shows_its_filter(client, fashion):
    page = client.get("/m/fashion_cnn/units/features.block1.conv/3?image=coffee").text
    key = page.split('id="filter" src="/api/maps/')[1].split(".png")[0]
    weights = interpret.filters(fashion, "features.block1.conv", mode="rgb")[3]
    served = png_of(client.get(f"/api/maps/{key}.png"))
    factor = served.shape[0] // weights.shape[-1]
    expected = (weights[0].numpy() * 255).round().astype(np.uint8)  # one input channel: gray
    np.testing.assert_allclose(served[::factor, ::factor, 0].astype(int), expected.astype(int), atol=1)
    assert 'id="filter"' not in client.get("/m/fashion_cnn/units/features.block2/3?image=coffee").text


def test_faithfulness_on_request_equals_the_python_apis(client, fashion):
    answer = client.post("/api/explain", json={"image": "coffee", "method": "gradient", "target": "Bag"}).json()
    scores = client.post("/api/faithfulness", json={"key": answer["key"], "steps": 8})
    assert scores.status_code == 200, scores.text
    batch = fashion.prepare([zoo.load_image("coffee", channels=1)])
    maps = interpret.get_method("gradient").fn(fashion, batch, "Bag")
    curves = interpret.evaluate.deletion_insertion(fashion, batch, maps, 8, steps=8, deletion_to="blur")
    assert scores.json()["deletion_auc"] == pytest.approx(float(curves.deletion_auc[0]), rel=1e-5)
    np.testing.assert_allclose(scores.json()["insertion"], curves.insertion[0].numpy(), rtol=1e-5)
    band = interpret.evaluate.random_band(fashion, batch, 8, draws=8, steps=8, deletion_to="blur")
    for metric in ("insertion", "deletion"):
        shown = scores.json()["random"][metric]
        assert shown["low"] == pytest.approx(float(band.interval(metric)[1][0]), rel=1e-5)
        assert shown["beaten"] == bool(band.beats(metric, getattr(curves, f"{metric}_auc"))[0])
    assert client.post("/api/faithfulness", json={"key": answer["key"], "steps": 1}).status_code == 400
    assert client.post("/api/faithfulness", json={"key": "../x", "steps": 8}).status_code == 404


def wait_for_job(client, job: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while (status := client.get(f"/api/jobs/{job}").json())["state"] not in ("done", "cancelled", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_unit_patches_are_the_atlas_top_k_and_kept_on_disk_for_a_restart(fashion, tmp_path):
    data = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    layer, channel = "features.block2", 5
    with TestClient(create_app([fashion], data, cache_dir=tmp_path)) as client:
        early = client.get(f"/api/models/fashion_cnn/units/{layer}/{channel}/patches")
        assert early.status_code == 404 and "POST /api/atlas" in early.json()["error"]
        started = client.post("/api/atlas", json={"layer": layer})
        assert started.status_code == 202 and started.json()["steps"] == 40, started.text
        status = wait_for_job(client, started.json()["id"])
        assert status["state"] == "done" and status["step"] == 40, status
        shown = client.get(f"/api/models/fashion_cnn/units/{layer}/{channel}/patches").json()["patches"]
        pictures = [png_of(client.get(p["map"])) for p in shown]
    direct = interpret.inside.neuron_atlas(fashion, layer, data, top=9, progress=False)
    assert [p["index"] for p in shown] == direct.top_indices[channel].tolist()
    np.testing.assert_allclose([p["activation"] for p in shown], direct.top_values[channel].numpy(), rtol=1e-5)
    assert [p["box"] for p in shown] == [list(direct.box(channel, r)) for r in range(9)]
    assert all(picture.ndim in (2, 3) for picture in pictures)
    kept = list((tmp_path / "atlas").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".npz"
    stamp = kept[0].stat().st_mtime_ns
    with TestClient(create_app([fashion], data, cache_dir=tmp_path)) as client:  # a restart reuses the file
        again = client.post("/api/atlas", json={"layer": layer})
        assert again.status_code == 200 and again.json()["kept"] is True
        reused = client.get(f"/api/models/fashion_cnn/units/{layer}/{channel}/patches").json()["patches"]
        assert [p["index"] for p in reused] == [p["index"] for p in shown]
        assert not client.app.state.explorer.jobs  # nothing recomputed
    assert kept[0].stat().st_mtime_ns == stamp
    other = data.clone()
    other[0] = 1 - other[0]
    with TestClient(create_app([fashion], other, cache_dir=tmp_path)) as client:  # other data: not reused
        assert client.post("/api/atlas", json={"layer": layer}).status_code == 202


def test_a_cancelled_or_shut_down_atlas_leaves_no_file(fashion, tmp_path):
    data = torch.rand(3000, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with TestClient(create_app([fashion], data, cache_dir=tmp_path)) as client:
        job = client.post("/api/atlas", json={"layer": "features.block1"}).json()["id"]
        client.post(f"/api/jobs/{job}/cancel")
        status = wait_for_job(client, job)
        assert status["state"] == "cancelled" and status["step"] < 3000
        client.post("/api/atlas", json={"layer": "features.block2"})  # running when the server stops
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_unit_page_without_data_says_how_to_get_patches(client):
    page = client.get("/m/fashion_cnn/units/features.block2/1?image=coffee")
    assert page.status_code == 200 and "--data fashion-mnist" in page.text and 'id="no-data"' in page.text
    answer = client.post("/api/atlas", json={"layer": "features.block2"})
    assert answer.status_code == 400 and "--data" in answer.json()["error"]


@pytest.mark.parametrize("method, target, layer, options", [
    ("invert", None, "features.block1", {"steps": 6, "seed": 2}),
    ("dream", None, "features.block2", {"octaves": 2, "steps": 2, "jitter": 2}),
    ("pgd", "Bag", None, {"steps": 5, "eps": 0.05, "seed": 1})])
def test_an_optimization_job_ends_with_the_python_apis_picture(client, fashion, method, target, layer, options):
    started = client.post("/api/optimize", json={"image": "coffee", "method": method, "target": target,
                                                 "layer": layer, "options": options})
    assert started.status_code == 202, started.text
    status = wait_for_job(client, started.json()["id"])
    assert status["state"] == "done" and status["step"] == status["steps"], status
    served = npy_of(client.get(f"/api/jobs/{status['id']}/image.npy"))
    batch = fashion.prepare([zoo.load_image("coffee", channels=1)])
    where = {"layer": layer} if layer else {}
    expected = interpret.get_method(method).fn(fashion, batch, target, **where, **options, progress=False)[0].numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-7)
    assert status["prediction"]["index"] == int(fashion(torch.from_numpy(expected)[None]).argmax())
    if method == "pgd":
        assert np.abs(served - batch[0].numpy()).max() <= 0.05 + 1e-6


def test_a_cancelled_optimization_stops_early_and_leaves_the_model_and_rng_as_found(fashion, tmp_path):
    before = state_snapshot(fashion)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    with TestClient(create_app([fashion], cache_dir=tmp_path)) as client:
        job = client.post("/api/optimize", json={"image": "coffee", "method": "pgd",
                                                 "options": {"steps": 5000}}).json()["id"]
        deadline = time.monotonic() + 20
        while client.get(f"/api/jobs/{job}").json()["step"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        client.post(f"/api/jobs/{job}/cancel")
        status = wait_for_job(client, job)
        assert status["state"] == "cancelled" and 0 < status["step"] < 5000, status
        assert png_of(client.get(status["image"])).ndim in (2, 3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert_unchanged(before, fashion)


@pytest.mark.parametrize("fields, words", [
    ({"method": "style"}, "unknown optimization 'style'"),
    ({"method": "pgd", "options": {"eps": -1}}, "eps must be positive"),
    ({"method": "pgd", "options": {"progress": True}}, "progress cannot be set here"),
    ({"method": "dream", "options": {"octave_scale": 9}}, "octave_scale must be"),
    ({"method": "invert", "layer": "nowhere"}, "nowhere")])
def test_bad_optimizations_get_one_line(client, fields, words):
    answer = client.post("/api/optimize", json={"image": "coffee", **fields})
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text
    assert "\n" not in answer.json()["error"]


def test_option_widgets_come_from_the_declared_options(client):
    page = client.get('/m/fashion_cnn/image/coffee/optimize/dream?options={"octaves": 2}').text
    assert 'data-option="octave_scale"' in page and 'min="1"' in page and 'max="4"' in page
    assert 'data-option="octaves" data-type="integer"' in page and 'value="2"' in page
    assert 'data-option="progress"' not in page and 'data-option="tile"' not in page
    explain = client.get("/m/fashion_cnn/image/coffee/explain/occlusion?options=" + json.dumps({"fill": "black"})).text
    assert '<option value="black" selected>' in explain and 'data-option="window"' in explain
    boolean = client.get("/m/fashion_cnn/image/coffee/explain/gradcam?options=" + json.dumps({"upsample": False}))
    assert '<option value="false" selected>' in boolean.text and '<option value="true" selected>' not in boolean.text
    bad = client.get("/m/fashion_cnn/image/coffee/explain/occlusion?options=" + json.dumps({"window": 0}))
    assert bad.status_code == 400 and error_of(bad) == "window must be at least 1, got 0"  # a page: its error page


@pytest.mark.parametrize("method", interpret.methods(), ids=lambda m: m.name)
def test_option_schemas_say_what_the_widgets_and_checks_say(method):
    from cnnviz.explorer.options import check_options, option_fields, option_schemas

    schemas = option_schemas(method)
    fields = option_fields(method)
    assert list(schemas) == [field["name"] for field in fields]
    for field in fields:
        schema = schemas[field["name"]]
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert types[0] == field["type"] and ("null" in types) == field["nullable"]
        if "choices" in field:
            assert schema["enum"] == field["choices"] + ([None] if field["nullable"] else [])
        for end in ("minimum", "maximum"):
            bound = schema.get(end, schema.get("exclusive" + end.capitalize()))
            assert bound == field.get(end)
        if "default" in schema and schema["default"] is not None:
            assert check_options(method, {field["name"]: schema["default"]}) == {field["name"]: schema["default"]}
        assert schema.get("description", "") == method.options()[field["name"]].help


def test_compare_shows_each_models_own_explanation(fashion, tmp_path):
    torch.manual_seed(0)
    from tests.conftest import TinyCNN

    tiny = zoo.wrap(TinyCNN(), input_size=16, classes=["Bag", "bee", "cow"], default_layer="conv2", name="tiny")
    with TestClient(create_app([fashion, tiny], cache_dir=tmp_path)) as client:
        answer = client.post("/api/compare", json={"models": ["fashion_cnn", "tiny"], "image": "coffee",
                                                   "method": "gradcam", "target": "Bag"})
        assert answer.status_code == 200, answer.text
        for shown in answer.json()["results"]:
            own = client.post("/api/explain", json={"model": shown["model"], "image": "coffee", "method": "gradcam",
                                                    "target": "Bag"}).json()
            np.testing.assert_array_equal(npy_of(client.get(shown["files"]["map.npy"])),
                                          npy_of(client.get(own["files"]["map.npy"])))
            assert shown["record"]["model"] == shown["model"]
        assert {r["record"]["target"]["name"] for r in answer.json()["results"]} == {"Bag"}
        page = client.get("/compare/fashion_cnn/tiny/image/coffee/explain/gradcam?target=Bag")
        assert page.status_code == 200 and page.text.count('class="compared"') == 2
        assert all(f'data-key="{r["key"]}"' in page.text for r in answer.json()["results"])
        assert "/compare/fashion_cnn/tiny/image/coffee/explain/gradcam" in client.get("/m/fashion_cnn/image/coffee").text
        bad = client.post("/api/compare", json={"models": ["fashion_cnn", "ghost"], "image": "coffee",
                                                "method": "gradcam"})
        assert bad.status_code == 404 and "ghost" in bad.json()["error"]
        assert client.post("/api/compare", json={"models": "fashion_cnn", "image": "coffee",
                                                 "method": "gradcam"}).status_code == 400


def test_finished_jobs_are_forgotten_past_the_limit(fashion, tmp_path, monkeypatch):
    from cnnviz.explorer import state

    monkeypatch.setattr(state, "KEPT_JOBS", 3)
    with TestClient(create_app([fashion], cache_dir=tmp_path)) as client:
        ids = []
        for _ in range(5):
            ids.append(client.post("/api/optimize", json={"image": "coffee", "method": "pgd",
                                                          "options": {"steps": 1}}).json()["id"])
            wait_for_job(client, ids[-1])
        assert len(client.app.state.explorer.jobs) <= 4
        assert client.get(f"/api/jobs/{ids[0]}").status_code == 404
        assert client.get(f"/api/jobs/{ids[-1]}").json()["state"] == "done"


def test_cached_computes_once_on_the_models_queue_and_keeps_no_none(fashion, tmp_path):
    from cnnviz.explorer.state import Explorer

    explorer = Explorer({"fashion_cnn": fashion}, cache_dir=tmp_path)
    calls = []

    def compute() -> str:
        calls.append(threading.current_thread().name)
        return "value"

    async def twice() -> list:
        return [await explorer.cached("k", compute, on=fashion), await explorer.cached("k", compute, on=fashion)]

    assert asyncio.run(twice()) == ["value", "value"] and calls == ["cnnviz-compute-cpu"]
    nothing = []
    assert asyncio.run(explorer.cached("none", lambda: nothing.append(1))) is None
    assert asyncio.run(explorer.cached("none", lambda: nothing.append(1))) is None and nothing == [1, 1]
    explorer.close()
