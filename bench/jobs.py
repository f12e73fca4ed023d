"""Whole jobs, today's path against the fast paths: the atlas over Fashion-MNIST's 70k images and
deletion/insertion over a folder of photos. Every case runs in a fresh process and times the job
call end to end (compile from inductor's warm on-disk cache included; a warm-up pass fills it).

Cases: ``today`` (eager fp32, ``compile="off"``: the path before the fast paths), ``auto fp32`` (the
default now), ``compiled fp32`` (``compile="on"``), and the same three in opt-in bf16.

- atlas: ``neuron_atlas(fashion_cnn, "features.block3.act", train + test = 70,000 images)``;
- deletion/insertion: ``evaluate_images`` of Grad-CAM and the random baseline on 16 photos
  (skimage samples written as PNG files to a temporary folder), 32 curve steps, efficientnet_lite0.

Usage:
    python bench/jobs.py [--rounds 2] [--json out.json]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", nargs="+", default=["atlas", "deletion/insertion"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
