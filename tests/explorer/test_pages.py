"""The pages through the real ASGI app: identical explanations asked at once are computed once, errors on a
page are pages in the site's frame with the way back (the API keeps its one line of JSON), class names are
matched as the OpenAPI says, the method switcher, the layer table by block, the feature-map grid and the
placeholders."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from cnnviz import interpret
from cnnviz.explorer import create_app, work


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
