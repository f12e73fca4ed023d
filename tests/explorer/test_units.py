"""Unit pages that do not surprise: the page itself starts nothing (its script starts the layer's sheet in the
background, and the page says what the scan costs), and a job a page started cancelled once no page has polled it
for the grace period, through the real ASGI app."""

from __future__ import annotations

import time

import pytest
import torch
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import atlas_job, create_app, jobs
from tests.explorer.test_app import wait_for_job


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def until(check, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture()
def served(fashion, tmp_path):
    data = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with TestClient(create_app([fashion], data, cache_dir=tmp_path)) as client:
        yield client


def test_a_unit_page_says_what_its_background_scan_costs_and_shows_a_kept_sheet(served, monkeypatch):
    monkeypatch.setattr(atlas_job, "PACE", {})  # no scan measured or estimated yet in this process
    monkeypatch.setattr(atlas_job, "GUESSES", {})
    explorer = served.app.state.explorer
    page = served.get("/m/fashion_cnn/units/features.block1/5?image=coffee")
    assert page.status_code == 200, page.text
    assert explorer.jobs == {} and not list(explorer.cache_dir.rglob("*.npz"))  # the page's script starts it
    assert 'data-sheet="missing"' in page.text and "over 40 items" in page.text and "estimated" in page.text
    assert "ties at the ceiling ranked by the pre-activation" in page.text
    job = served.post("/api/sheets", json={"layer": "features.block1"}).json()["id"]
    assert wait_for_job(served, job)["state"] == "done"
    kept = served.get("/m/fashion_cnn/units/features.block1/5?image=coffee").text
    assert 'data-sheet="kept"' in kept and "over 40 items" not in kept and len(explorer.jobs) == 1
    for kept_file in explorer.cache_dir.rglob("*.npz"):
        kept_file.unlink()
    again = served.get("/m/fashion_cnn/units/features.block1/5?image=coffee").text  # the pace is now measured
    assert "over 40 items" in again and "measured" in again and len(explorer.jobs) == 1


def test_a_page_started_job_is_cancelled_after_the_grace_without_a_poll(served, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(jobs, "clock", clock)
    explorer = served.app.state.explorer
    body = {"layer": "features.block2", "channel": 3, "steps": 5000, "round_steps": 1}
    page = served.post("/api/jobs", json={**body, "watch": True}).json()
    api = served.post("/api/jobs", json=body).json()
    assert page["watched"] is True and api["watched"] is False
    watched, free = explorer.jobs[page["id"]], explorer.jobs[api["id"]]
    clock.now += jobs.GRACE - 1
    assert served.get(f"/api/jobs/{page['id']}").json()["state"] in ("queued", "running")  # a poll: alive
    clock.now += jobs.GRACE - 1
    rounds = watched.rounds
    until(lambda: watched.rounds > rounds + 2)
    assert watched.state == "running"  # polled GRACE - 1 s ago
    clock.now += 2  # the last page closed GRACE + 1 s ago
    until(lambda: watched.over)
    status = served.get(f"/api/jobs/{page['id']}").json()
    assert status["state"] == "cancelled" and "no page polled it" in status["error"]
    rounds = free.rounds
    until(lambda: free.rounds > rounds + 2)
    assert free.state == "running"  # started from the API: runs on unwatched
    served.post(f"/api/jobs/{api['id']}/cancel")
    assert wait_for_job(served, api["id"])["state"] == "cancelled"


def test_a_scan_started_by_a_page_stops_when_the_page_is_gone_unless_the_api_adopts_it(fashion, tmp_path,
                                                                                       monkeypatch):
    clock = Clock()
    monkeypatch.setattr(jobs, "clock", clock)
    data = torch.rand(3000, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with TestClient(create_app([fashion], data, cache_dir=tmp_path)) as client:
        explorer = client.app.state.explorer
        first = client.post("/api/atlas", json={"layer": "features.block1", "watch": True}).json()
        second = client.post("/api/atlas", json={"layer": "features.block2", "watch": True}).json()
        assert first["watched"] and second["watched"]
        adopted = client.post("/api/atlas", json={"layer": "features.block2"}).json()
        assert adopted["id"] == second["id"] and adopted["watched"] is False
        clock.now += jobs.GRACE + 1
        until(lambda: explorer.jobs[first["id"]].over)
        assert explorer.jobs[first["id"]].state == "cancelled"
        kept = explorer.jobs[second["id"]]
        rounds = kept.rounds
        until(lambda: kept.rounds > rounds + 1 or kept.over)
        assert kept.state in ("running", "done")
        kept.cancel()


def test_activation_maximization_of_a_dead_unit_says_it_did_not_move(tmp_path):
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight[0] = torch.tensor([[-1.0, 0.0, 1.0]] * 3)  # channel 0: an edge detector, alive everywhere
        conv.bias[0] = 1.0
        conv.weight[1].zero_()  # channel 1: a dead filter, a constant map, no gradient
    model = torch.nn.Sequential()
    model.add_module("body", torch.nn.Sequential(conv, torch.nn.ReLU()))
    model.add_module("head", torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                 torch.nn.Linear(2, 2)))
    dead = zoo.wrap(model.eval(), input_size=16, mean=(0.5,), std=(0.25,), classes=["a", "b"], name="dead")
    pictures = interpret.actmax(dead, unit="body:0-1", preset="jitter", steps=16, progress=False)
    reasons = interpret.optimize.unmoved(dead, "body:0-1", pictures)
    assert reasons[0] is None and "did not move" in reasons[1] and "dead or saturated" in reasons[1]
    with TestClient(create_app([dead], cache_dir=tmp_path)) as client:
        for channel, still in ((0, False), (1, True)):
            job = client.post("/api/jobs", json={"model": "dead", "layer": "body", "channel": channel,
                                                 "steps": 16}).json()["id"]
            status = wait_for_job(client, job)
            assert status["state"] == "done" and (status["still"] is not None) == still, status
            assert still is False or status["still"] == reasons[1]
