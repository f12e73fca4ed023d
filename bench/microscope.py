"""The layer sheet (``interpret.layer_sheet``) against its two parts run alone, and the first paint of "why, by
units" with a kept sheet against today's page.

``--part sheet`` (in this process, interleaved, best of the rounds): the atlas scan of the layer over the data
alone (``neuron_atlas``), one batched optimization of every channel alone (``actmax(unit="LAYER:all")``, the
default preset), and the sheet that does both and gathers the statistics. Goal: sheet <= 2x (scan + optimization).

``--part paint`` (two fresh processes, one after the other): the server's answer to
``GET /m/MODEL/image/IMAGE/why?layer=LAYER`` (the page's first paint: its HTML, every number in it computed),
median of ``--samples`` after one warm-up, by the code in ``--before`` (today's: /work/main) and by this tree with
the layer's sheet kept. Goal: <= 200 ms over today's.

Usage:
    python bench/microscope.py [--part sheet|paint|both] [--model fashion_cnn] [--layer features.block3]
        [--data fashion-mnist] [--rounds 2] [--before /work/main] [--samples 15]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PAINT = r"""
import json, statistics, sys, tempfile, time
import torch
from starlette.testclient import TestClient
from cnnviz import zoo
from cnnviz.explorer import create_app
model, layer, data, samples, sheet = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "yes"
handle = zoo.load(model, device="cpu")
with TestClient(create_app([handle], data, cache_dir=tempfile.mkdtemp())) as client:
    if sheet:
        job = client.post("/api/sheets", json={"layer": layer}).json()
        while client.get(f"/api/jobs/{job['id']}").json()["state"] not in ("done", "failed", "cancelled"):
            time.sleep(0.2)
    url = f"/m/{model}/image/coffee/why?layer={layer}"
    assert client.get(url).status_code == 200  # warm: the image prepared, the first forward done
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        page = client.get(url)
        times.append(time.perf_counter() - start)
        assert page.status_code == 200
    print(json.dumps({"median": statistics.median(times), "max": max(times),
                      "pictures": page.text.count('class="looks-for" alt') - page.text.count(" hidden>")}))
"""


def sheet_part(args: argparse.Namespace) -> None:
    import torch

    from cnnviz import interpret, zoo
    from cnnviz.interpret.inside import SHEET_STEPS, neuron_atlas
    from cnnviz.interpret.optimize import default_preset
    from cnnviz.zoo.data import open_dataset

    handle = zoo.load(args.model, device=args.device)
    dataset = open_dataset(args.data)
    scan, optimization, sheet = [], [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        neuron_atlas(handle, args.layer, dataset, top=9, bottom=0, progress=False)
        scan.append(time.perf_counter() - start)
        start = time.perf_counter()
        interpret.actmax(handle, unit=f"{args.layer}:all", steps=SHEET_STEPS, progress=False)
        optimization.append(time.perf_counter() - start)
        start = time.perf_counter()
        made = interpret.layer_sheet(handle, args.layer, dataset, top=9, progress=False)
        sheet.append(time.perf_counter() - start)
    both = min(scan) + min(optimization)
    print(f"{datetime.date.today()} {handle.device} torch {torch.__version__} threads {torch.get_num_threads()}: "
          f"{args.model} {args.layer} ({made.channels} channels) over {len(dataset)} items ({args.data}), "
          f"pictures {SHEET_STEPS} steps, preset {default_preset()}, best of {args.rounds}")
    print(f"  atlas scan alone {min(scan):.2f} s + one batched optimization alone {min(optimization):.2f} s = "
          f"{both:.2f} s;  layer sheet {min(sheet):.2f} s = {min(sheet) / both:.2f}x (goal <= 2x)")


def paint_part(args: argparse.Namespace) -> None:
    answers = {}
    for name, root, sheet in (("today", Path(args.before), "no"), ("with a kept sheet", REPO, "yes")):
        env = {**os.environ, "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-c", PAINT, args.model, args.layer, args.data, str(args.samples),
                               sheet], env=env, cwd=root, capture_output=True, text=True, check=True)
        answers[name] = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = answers["today"], answers["with a kept sheet"]
    print(f"{datetime.date.today()}: GET why?layer={args.layer} ({args.model}, --data {args.data}), median of "
          f"{args.samples} (max)")
    print(f"  today ({args.before}): {1000 * before['median']:.0f} ms ({1000 * before['max']:.0f});  this tree with the "
          f"sheet kept: {1000 * after['median']:.0f} ms ({1000 * after['max']:.0f}), {after['pictures']} pictures in the "
          f"first paint;  {1000 * (after['median'] - before['median']):+.0f} ms (goal <= +200 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["sheet", "paint", "both"], default="both")
    parser.add_argument("--model", default="fashion_cnn")
    parser.add_argument("--layer", default="features.block3")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="/work/main", help="the tree whose page is today's")
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    if args.part in ("sheet", "both"):
        sheet_part(args)
    if args.part in ("paint", "both"):
        paint_part(args)


if __name__ == "__main__":
    main()
