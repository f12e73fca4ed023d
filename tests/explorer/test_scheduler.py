"""No job holds the compute queue: long jobs run in rounds through the one scheduler of the device, interactive
requests go before the next round, a job in rounds ends with the Python API's own answer, and every work size
is bounded. Through the real ASGI app (Starlette's TestClient); ordering is asserted by counting rounds, never by
timing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app
from cnnviz.explorer.compute_queue import ComputeQueue
from cnnviz.explorer.jobs import MAX_STEPS
from cnnviz.explorer.optimize_jobs import LIMITS
from tests.conftest import assert_unchanged, state_snapshot
from tests.explorer.test_app import npy_of, wait_for_job


@pytest.fixture()
def client(fashion, tmp_path):
    with TestClient(create_app([fashion], cache_dir=tmp_path)) as client:
        yield client


def test_interactive_calls_go_before_every_queued_round():
    queue = ComputeQueue("cpu")
    order: list[str] = []

    def busy() -> list:  # while it runs, three rounds and then two calls are queued
        rounds = [queue.submit_round(lambda i=i: order.append(f"round {i}")) for i in range(3)]
        return rounds + [queue.submit(lambda i=i: order.append(f"call {i}")) for i in range(2)]

    for later in queue.submit(busy).result():
        later.result()
    queue.close()
    assert order == ["call 0", "call 1", "round 0", "round 1", "round 2"] and queue.rounds_run == 3


def started(client, **request) -> dict:
    answer = client.post("/api/optimize", json={"image": "coffee", **request})
    assert answer.status_code == 202, answer.text
    return answer.json()


def until(check, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("method, layer", [("invert", "features.block2"), ("dream", "features.block2"),
                                           ("pgd", None)])
def test_an_explain_made_while_a_long_job_runs_waits_for_at_most_one_round(client, fashion, monkeypatch, method,
                                                                           layer):
    explorer = client.app.state.explorer
    queue = explorer.queue(fashion)
    options = {"steps": MAX_STEPS, **({"octaves": 2} if method == "dream" else {})}
    status = started(client, method=method, layer=layer, options=options, round_steps=4)
    assert status["cost"]["steps"] == status["steps"] > 0 and status["cost"]["rounds_total"] >= status["steps"] / 4
    job = explorer.jobs[status["id"]]
    until(lambda: job.rounds >= 2)
    seen = []
    submit = queue.submit

    def watched(fn):  # each interactive call: the job's rounds when it was asked and when it ran
        asked = job.rounds

        def run():
            seen.append((asked, job.rounds, job.over, job.step))
            return fn()
        return submit(run)

    monkeypatch.setattr(queue, "submit", watched)
    answer = client.post("/api/explain", json={"image": "chelsea", "method": "gradcam", "target": "Bag"})
    assert answer.status_code == 200, answer.text
    assert len(seen) >= 2, seen  # a first explain of an image computes twice: the prediction, then the map
    assert all(not over and step < job.steps for _, _, over, step in seen), seen
    assert seen[-1][1] - seen[0][0] <= 1, seen  # the whole request waited for one round at most
    monkeypatch.undo()
    during = client.get(f"/api/jobs/{job.id}").json()
    assert during["rounds"] >= 2 and during["cost"]["seconds"] > 0, during
    client.post(f"/api/jobs/{job.id}/cancel")
    after = wait_for_job(client, job.id)
    assert after["state"] == "cancelled" and after["step"] < after["steps"], after


def test_jobs_in_rounds_side_by_side_end_with_the_python_apis_pictures(client, fashion):
    """Three jobs take turns a step a round on one model while other work (which moves the global random
    generator and the model's modes) runs between their rounds: each ends as one direct call would."""
    before = state_snapshot(fashion)
    asked = [("invert", None, "features.block1", {"steps": 6, "seed": 2}),
             ("dream", None, "features.block2", {"octaves": 2, "steps": 3, "jitter": 2}),
             ("pgd", "Bag", None, {"steps": 5, "eps": 0.05, "seed": 1})]
    ids = [started(client, method=m, target=t, layer=layer, options=o, round_steps=1)["id"]
           for m, t, layer, o in asked]
    queue = client.app.state.explorer.queue(fashion)

    def meddle() -> None:
        torch.rand(7)
        fashion.train()
        fashion.eval()

    jobs = [client.app.state.explorer.jobs[i] for i in ids]
    while not all(job.over for job in jobs):
        rounds = queue.rounds_run
        queue.submit(meddle).result()
        client.post("/api/predict", json={"image": "chelsea"})
        until(lambda: queue.rounds_run > rounds or all(job.over for job in jobs))  # one round between meddles
    batch = fashion.prepare([zoo.load_image("coffee", channels=1)])
    for job_id, (method, target, layer, options) in zip(ids, asked):
        status = client.get(f"/api/jobs/{job_id}").json()
        assert status["state"] == "done" and status["rounds"] > status["steps"] / 2, status
        where = {"layer": layer} if layer else {}
        expected = interpret.get_method(method).fn(fashion, batch, target, **where, **options, progress=False)
        np.testing.assert_array_equal(npy_of(client.get(f"/api/jobs/{job_id}/image.npy")), expected[0].numpy())
    assert_unchanged(before, fashion)


@pytest.mark.parametrize("request_, words", [
    ({"method": "pgd", "options": {"steps": MAX_STEPS + 1}}, f"steps must be between 1 and {MAX_STEPS}"),
    ({"method": "invert", "options": {"steps": 10**9}}, f"steps must be between 1 and {MAX_STEPS}"),
    ({"method": "dream", "options": {"octaves": LIMITS["octaves"] + 1}}, "octaves must be between 1 and"),
    ({"method": "dream", "round_steps": 0}, f"round_steps must be between 1 and {MAX_STEPS}")])
def test_work_sizes_over_their_bounds_get_one_line(client, request_, words):
    answer = client.post("/api/optimize", json={"image": "coffee", **request_})
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text
    assert "\n" not in answer.json()["error"] and not client.app.state.explorer.jobs
    unit = client.post("/api/jobs", json={"channel": 1, "steps": MAX_STEPS + 1})
    assert unit.status_code == 400 and f"between 1 and {MAX_STEPS}" in unit.json()["error"]


def test_the_bounds_and_the_cost_are_declared_and_shown(client):
    document = client.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    for method in ("invert", "dream", "pgd"):
        assert schemas[f"options-{method}"]["properties"]["steps"]["maximum"] == MAX_STEPS
    assert schemas["options-dream"]["properties"]["octaves"]["maximum"] == LIMITS["octaves"]
    for path in ("/api/jobs", "/api/optimize"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["round_steps"]["maximum"] == MAX_STEPS
    page = client.get('/m/fashion_cnn/image/coffee/optimize/dream?options={"steps": 7, "octaves": 3}'
                      "&round_steps=5").text
    assert 'id="job-cost" data-steps="21" data-rounds="5"' in page and f'max="{MAX_STEPS}"' in page
    assert client.get('/m/fashion_cnn/image/coffee/optimize/pgd?options={"steps": 5001}').status_code == 400


def test_a_unit_job_in_rounds_ends_with_actmaxs_picture(client, fashion):
    started = client.post("/api/jobs", json={"layer": "features.block2", "channel": 3, "steps": 6, "round_steps": 2})
    assert started.status_code == 202, started.text
    status = wait_for_job(client, started.json()["id"])
    assert status["state"] == "done" and status["rounds"] == 3 == status["cost"]["rounds_total"], status
    expected = interpret.actmax(fashion, unit="features.block2:3", preset="jitter", steps=6, progress=False)
    np.testing.assert_array_equal(npy_of(client.get(f"/api/jobs/{status['id']}/image.npy")), expected[0].numpy())
