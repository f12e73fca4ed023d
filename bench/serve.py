"""The explorer under load and against the clock, on a real ``cnnviz serve`` process (uvicorn, 127.0.0.1).

- round trip: ``POST /api/explain`` Grad-CAM on efficientnet_lite0 (a new target each time, so nothing comes
  from the cache), side by side with calling ``interpret.gradcam`` directly in this process, interleaved;
- cached repeat: the same request again;
- first paint: the image page's HTML and everything it loads (picture, CSS, JS), fetched in order;
- load: 32 clients sending mixed requests (explain, predict, layers, a unit, health) for a minute; every map
  fetched is compared with the Python API's; errors, the result cache's size and the server's memory reported.

Usage:
    python bench/serve.py [--seconds 60] [--clients 32] [--rounds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("chelsea", "coffee", "camera", "coins")
METHODS = ("gradcam", "gradient")
TARGETS = (None, "Bag")


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, *, seconds: float, clients: int, expected: Callable[..., np.ndarray], pid: int,
         seed: int = 0) -> dict[str, Any]:
    """``clients`` threads sending mixed requests to ``url`` for ``seconds``; maps are checked against
    ``expected(image, method, target)`` (fashion_cnn's classes)."""
    truth = {(i, m, t): expected(i, m, t) for i in IMAGES for m in METHODS for t in TARGETS}
    errors: list[str] = []
    counts = {"requests": 0, "maps_checked": 0, "maps_differing": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    with httpx.Client(base_url=url, timeout=120) as warm:
        warm.get("/api/models/fashion_cnn/layers")
        warm.post("/api/explain", json={"image": "chelsea", "method": "gradcam"})
    start_rss = rss_mb(pid)
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        with httpx.Client(base_url=url, timeout=120) as http:
            while time.monotonic() < stop:
                kind = rng.choice(("explain", "explain", "explain", "predict", "layers", "unit", "health"))
                image = rng.choice(IMAGES)
                began = time.perf_counter()
                try:
                    if kind == "explain":
                        method, target = rng.choice(METHODS), rng.choice(TARGETS)
                        answer = http.post("/api/explain", json={"image": image, "method": method, "target": target})
                        if answer.status_code == 200:
                            file = http.get(answer.json()["files"]["map.npy"])
                            if file.status_code == 200:
                                served = np.load(io.BytesIO(file.content), allow_pickle=False)
                                same = np.allclose(served, truth[(image, method, target)], rtol=1e-5, atol=1e-7)
                                with lock:
                                    counts["maps_checked"] += 1
                                    counts["maps_differing"] += not same
                            answer = file if file.status_code != 200 else answer
                    elif kind == "predict":
                        answer = http.post("/api/predict", json={"image": image})
                    elif kind == "layers":
                        answer = http.get("/api/models/fashion_cnn/layers")
                    elif kind == "unit":
                        answer = http.get(f"/api/models/fashion_cnn/units/features.block2/{rng.randrange(32)}",
                                          params={"image": image})
                    else:
                        answer = http.get("/api/health")
                    if answer.status_code != 200:
                        with lock:
                            errors.append(f"{kind} {answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"{kind} {type(exc).__name__}: {exc}")
                with lock:
                    counts["requests"] += 1
                    latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    health = httpx.get(url + "/api/health").json()
    queues = health["queues"].values()
    return {**counts, "errors": errors[:20], "seconds": seconds, "clients": clients,
            "requests_per_second": counts["requests"] / seconds,
            "latency_median_ms": 1000 * float(np.median(latencies)) if latencies else None,
            "latency_p95_ms": 1000 * float(np.percentile(latencies, 95)) if latencies else None,
            "cache_bytes": health["cache_bytes"], "cache_limit_bytes": health["cache_limit_bytes"],
            "most_jobs_at_once": max(q["most_at_once"] for q in queues),
            "rss_start_mb": start_rss, "rss_end_mb": rss_mb(pid), "rss_growth_mb": rss_mb(pid) - start_rss}


@contextlib.contextmanager
def server(*args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A ``cnnviz serve`` process on a free port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    process = subprocess.Popen([sys.executable, "-m", "cnnviz.cli.main", "serve", "--port", str(port), *args],
                               cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def speed(url: str, rounds: int) -> dict[str, Any]:
    """Round trip vs the method itself, the cached repeat and the first page, side by side in rounds."""
    import torch

    from cnnviz import interpret
    from cnnviz import zoo

    handle = zoo.load("efficientnet_lite0", device="cpu")
    batch = handle.prepare([zoo.load_image("chelsea")])
    direct, trip, inside, cached, page = [], [], [], [], []
    with httpx.Client(base_url=url, timeout=120) as http:
        http.post("/api/explain", json={"image": "chelsea", "method": "gradcam", "target": 999})  # warm up both
        interpret.gradcam(handle, batch, 999)
        for k in range(rounds):
            began = time.perf_counter()
            interpret.gradcam(handle, batch, k)
            direct.append(time.perf_counter() - began)
            began = time.perf_counter()
            answer = http.post("/api/explain", json={"image": "chelsea", "method": "gradcam", "target": k})
            trip.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text
            inside.append(answer.json()["record"]["seconds"])
            began = time.perf_counter()
            again = http.post("/api/explain", json={"image": "chelsea", "method": "gradcam", "target": k})
            cached.append(time.perf_counter() - began)
            assert again.json() == answer.json()
            began = time.perf_counter()
            html = http.get(f"/m/efficientnet_lite0/image/chelsea?round={k}").text
            for asset in ("/static/explorer.css", "/static/explorer.js", "/m/efficientnet_lite0/image/chelsea/picture.png"):
                http.get(asset)
            page.append(time.perf_counter() - began)
            assert "Prediction" in html
    ms = lambda values: round(1000 * float(np.median(values)), 1)  # noqa: E731
    return {"gradcam_direct_ms": ms(direct), "gradcam_in_server_ms": ms(inside), "gradcam_round_trip_ms": ms(trip),
            "round_trip_minus_direct_ms": round(ms(trip) - ms(direct), 1),
            "round_trip_minus_in_server_ms": round(ms(trip) - ms(inside), 1), "cached_repeat_ms": ms(cached),
            "first_page_ms": ms(page), "rounds": rounds, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="load run length (0: speed only)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    from cnnviz import zoo

    results: dict[str, Any] = {"date": datetime.date.today().isoformat(), "device": "cpu"}
    with server("--model", "efficientnet_lite0", "--device", "cpu") as (url, _):
        results["speed"] = speed(url, args.rounds)
    print(json.dumps(results["speed"], indent=2), flush=True)
    if args.seconds > 0:
        fashion = zoo.load("fashion_cnn", device="cpu")

        def expected(image: str, method: str, target: str | None) -> np.ndarray:
            from cnnviz import interpret

            batch = fashion.prepare([zoo.load_image(image, channels=1)])
            return interpret.get_method(method).fn(fashion, batch, target)[0].numpy()

        with server("--model", "fashion_cnn", "--device", "cpu", "--cache-mb", "2") as (url, process):
            results["load"] = load(url, seconds=args.seconds, clients=args.clients, expected=expected,
                                   pid=process.pid)
        print(json.dumps(results["load"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
