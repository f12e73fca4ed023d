"""Whole jobs, today's path against the fast paths: the atlas over Fashion-MNIST's 70k images and
deletion/insertion over a folder of photos. Every case runs in a fresh process and times the job
call end to end (compile from inductor's warm on-disk cache included; a warm-up pass fills it).

Cases: ``today`` (eager fp32, ``compile="off"``: the path before the fast paths), ``auto fp32`` (the
default now), ``compiled fp32`` (``compile="on"``), and the same three in opt-in bf16.

- atlas: ``neuron_atlas(fashion_cnn, "features.block3.act", train + test = 70,000 images)``;
- deletion/insertion: ``evaluate_images`` of Grad-CAM and the random baseline on 16 photos
  (skimage samples written as PNG files to a temporary folder), 32 curve steps, efficientnet_lite0.

``--latency`` measures something else: how long a Grad-CAM explain and an image page take through the
explorer's app while each kind of long job runs (inversion, DeepDream, PGD, the atlas of a layer over a folder
of 512 noise images), against the same requests with the server idle. The phases run side by side, in shuffled
order, ``--rounds`` times; each job phase starts its job, waits for its first round, times ``--samples``
requests of each kind (each with the result cache emptied, so it computes afresh as a first visit does; a
seeded pause of 0 to 1 s before each, as a person clicks), then cancels the job.

Usage:
    python bench/jobs.py [--rounds 2] [--json out.json]
    python bench/jobs.py --latency [--model efficientnet_lite0] [--samples 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import torch
from timing import device_name, in_fresh_process

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.views.pixels import to_uint8

CASES = {"today (eager fp32)": ("fp32", "off"), "auto fp32": ("fp32", "auto"), "compiled fp32": ("fp32", "on"),
         "eager bf16": ("bf16", "off"), "auto bf16": ("bf16", "auto"), "compiled bf16": ("bf16", "on")}
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "horse", "cat", "immunohistochemistry")


def photo_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / "cnnviz-bench-photos"
    if not folder.is_dir():
        folder.mkdir()
        for copy in range(2):
            for name in PHOTOS:
                image = zoo.load_image(name)
                if copy:  # a second, mirrored set: 16 different images
                    image = image.flip(-1)
                zoo.save_image(folder / f"{name}-{copy}.png", to_uint8(image))
    return folder


def run_job(job: str, case: str, device: str | None) -> float:
    precision, mode = CASES[case]
    if job == "atlas":
        from cnnviz.interpret.inside.atlas.scan import neuron_atlas
        import cnnviz.zoo  # noqa: F401  (registers fashion_cnn)
        from cnnviz.zoo.data import DATASETS, read_idx_split
        from cnnviz.zoo.data import TensorImages

        handle = zoo.load("fashion_cnn", device=device, precision=precision, compile=mode)
        splits = [read_idx_split(DATASETS["fashion-mnist"].default_dir, split) for split in ("train", "t10k")]
        data = TensorImages(torch.cat([s.images for s in splits]))
        start = time.perf_counter()
        neuron_atlas(handle, "features.block3.act", data, top=9, progress=False)
        return time.perf_counter() - start
    from cnnviz.interpret.evaluate.scoring import evaluate_images, method_maker, random_maker

    handle = zoo.load("efficientnet_lite0", device=device, precision=precision, compile=mode)
    makers = {"gradcam": method_maker(interpret.gradcam), "random": random_maker()}
    folder = photo_folder()
    start = time.perf_counter()
    evaluate_images(handle, [folder], makers, metrics=("deletion", "insertion"), progress=False)
    return time.perf_counter() - start


LATENCY_JOBS = {"invert": {"method": "invert", "options": {"steps": 5000}},
                "dream": {"method": "dream", "options": {"steps": 200, "octaves": 4}},
                "pgd": {"method": "pgd", "options": {"steps": 3000}},
                "atlas": None}


def noise_folder(count: int = 512, side: int = 224) -> Path:
    """``count`` seeded noise images as PNG files: the atlas job's data set."""
    folder = Path(tempfile.gettempdir()) / f"cnnviz-bench-noise-{count}-{side}"
    if not folder.is_dir():
        folder.mkdir()
        generator = torch.Generator().manual_seed(0)
        for index in range(count):
            zoo.save_image(folder / f"{index:04d}.png", to_uint8(torch.rand(3, side, side, generator=generator)))
    return folder


def request_latency(model: str, device: str | None, samples: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of each request (a Grad-CAM explain, an image page) per phase (idle, or during each kind of job);
    see the module's doc."""
    import random
    import statistics

    from starlette.testclient import TestClient

    from cnnviz.explorer import create_app
    from cnnviz.explorer.result_cache import ResultCache

    handle = zoo.load(model, device=device)
    asks = {"explain": lambda client: client.post("/api/explain", json={"image": "chelsea", "method": "gradcam"}),
            "image page": lambda client: client.get(f"/m/{handle.name}/image/chelsea")}
    seconds = {phase: {ask: [] for ask in asks} for phase in ("idle", *LATENCY_JOBS)}
    order = random.Random(0)
    with tempfile.TemporaryDirectory() as cache, TestClient(create_app([handle], noise_folder(),
                                                                       cache_dir=cache)) as client:
        explorer = client.app.state.explorer

        def timed(ask: str) -> float:
            explorer.results = ResultCache(explorer.results.max_bytes)  # computed afresh, as a first visit
            start = time.perf_counter()
            answer = asks[ask](client)
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - start

        for ask in asks:  # warm-up
            timed(ask)
        for _ in range(rounds):
            phases = list(seconds)
            order.shuffle(phases)
            for phase in phases:
                job = None
                if phase != "idle":
                    body = LATENCY_JOBS[phase]
                    started = (client.post("/api/optimize", json={"image": "coffee", **body}) if body is not None
                               else client.post("/api/atlas", json={}))
                    assert started.status_code == 202, started.text
                    job = explorer.jobs[started.json()["id"]]
                    while job.rounds < 1:
                        time.sleep(0.01)
                for _ in range(samples):
                    for ask in asks:
                        time.sleep(order.uniform(0, 1))  # a person's pace: the job runs on between requests
                        seconds[phase][ask].append(timed(ask))
                if job is not None:
                    assert not job.over, f"{phase} ended before its requests were timed: make it longer"
                    job.cancel()
                    job.wait(120)
        print({phase: {ask: round(statistics.median(t) * 1000, 1) for ask, t in times.items()}
               for phase, times in seconds.items()}, flush=True)
    return seconds


def print_latency(model: str, seconds: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    import statistics

    device = zoo.pick_device(args.device)
    print(f"\n## Request latency during long jobs: {model}, {device_name(device)}, torch {torch.__version__}, "
          f"{datetime.date.today()}")
    print(f"`python bench/jobs.py --latency --model {model} --samples {args.samples} --rounds {args.rounds}`: "
          "through the app, phases side by side in shuffled order, each request computed afresh.\n")
    print("| during | request | median ms | max ms | median × idle | max × idle |\n|---|---|---:|---:|---:|---:|")
    for phase, times in seconds.items():
        for ask, taken in times.items():
            idle = statistics.median(seconds["idle"][ask])
            median, most = statistics.median(taken), max(taken)
            print(f"| {phase} | {ask} | {median * 1000:.0f} | {most * 1000:.0f} | {median / idle:.2f} | "
                  f"{most / idle:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", nargs="+", default=["atlas", "deletion/insertion"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--latency", action="store_true", help="explain latency during each kind of job")
    parser.add_argument("--model", default="efficientnet_lite0", help="with --latency: the served model")
    parser.add_argument("--samples", type=int, default=8, help="with --latency: requests of each kind per phase")
    args = parser.parse_args()
    if args.latency:
        seconds = request_latency(args.model, args.device, args.samples, args.rounds)
        print_latency(args.model, seconds, args)
        if args.json:
            Path(args.json).write_text(json.dumps({"model": args.model, "seconds": seconds}, indent=1))
        return
    if args.case:
        print(run_job(*args.case, args.device))
        return
    photo_folder()
    results = {}
    for job in args.jobs:
        for case in ("compiled fp32", "compiled bf16"):  # warm-up: fills inductor's cache and the cost records
            in_fresh_process(__file__, job, case, args.device)
        seconds = {case: float("inf") for case in CASES}
        for _ in range(args.rounds):
            for case in CASES:
                seconds[case] = min(seconds[case], in_fresh_process(__file__, job, case, args.device))
        results[job] = seconds
        print(job, {k: round(v, 2) for k, v in seconds.items()}, flush=True)
    device = zoo.pick_device(args.device)
    print(f"\n## Whole jobs, today's path and the fast paths: {device_name(device)}, torch {torch.__version__}, "
          f"{datetime.date.today()}")
    print(f"`python bench/jobs.py --rounds {args.rounds}`: each case in a fresh process, best of {args.rounds}.\n")
    print("| job | case | seconds | × today |\n|---|---|---:|---:|")
    for job, seconds in results.items():
        today = seconds["today (eager fp32)"]
        for case, took in seconds.items():
            print(f"| {job} | {case} | {took:.1f} | {today / took:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name(device), "date": str(datetime.date.today()),
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
