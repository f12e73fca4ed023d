"""Forward-only methods on the fast paths, side by side with captum, pytorch-grad-cam and the machine's limit.

One run, one device. For occlusion (169 and 3025 windows on one image, and 169 windows on each of 16
images) and Score-CAM (one image, ``blocks.14``'s 192 channels), it times:

- cnnviz eager fp32 (``compile="off"``), cnnviz compiled fp32 and bf16 (``compile="on"``) *end to end
  including the compile*, cnnviz's default (``compile="auto"``), and eager bf16;
- captum's Occlusion at each ``perturbations_per_eval`` in PPE (its best is the reference) and
  pytorch-grad-cam's ScoreCAM at each ``batch_size``; both on the same handle (channels-last fp32);
- the limit (``bench/limits.py``): the bare model's best forward throughput over eager NCHW,
  channels-last, compiled fp32, bf16 and compiled bf16, at several batch sizes.

Every case runs in a fresh process (``--case``), which times just the method call, as a user's
``cnnviz`` run would see it: a compiled case pays its compile from inductor's warm on-disk cache
(a warm-up pass fills the cache before timing starts), an eager case its first-call set-up. Rounds
alternate the cases; the best of the rounds is kept.

Usage:
    python bench/fastpath.py [--device cuda] [--rounds 2] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from collections.abc import Callable

import torch
from captum.attr import Occlusion
from limits import best_limit, limit_cases
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from timing import device_name, in_fresh_process, interleaved, sync

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.core.batching import auto_batch_size

PPE = (8, 16, 32)  # captum's best on this CPU was 8 (2026-12-01); 32 and up only slower
PGC_BATCH = (16, 32)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "horse", "cat", "immunohistochemistry")
TARGET, LAYER, CHANNELS = 282, "blocks.14", 192
OCCLUSION = {"occlusion, 169 windows, 1 image": (1, 32, 16), "occlusion, 3025 windows, 1 image": (1, 8, 4),
             "occlusion, 169 windows x 16 images": (16, 32, 16)}
SCORECAM = f"Score-CAM, {LAYER} ({CHANNELS} ch), 1 image"
OURS = {"cnnviz eager fp32": ("fp32", "off"), "cnnviz compiled fp32": ("fp32", "on"),
        "cnnviz auto fp32": ("fp32", "auto"), "cnnviz eager bf16": ("bf16", "off"),
        "cnnviz compiled bf16": ("bf16", "on")}


def photos(handle: zoo.ModelHandle, count: int) -> torch.Tensor:
    images = handle.prepare([zoo.load_image(name) for name in PHOTOS])
    return images.repeat(-(-count // len(PHOTOS)), 1, 1, 1)[:count]


def rows_of(job: str) -> int:
    if job == SCORECAM:
        return CHANNELS + 1
    count, window, stride = OCCLUSION[job]
    return count * (((224 - window) // stride + 1) ** 2 + 1)


def cases_of(job: str) -> list[str]:
    theirs = [f"pytorch-grad-cam batch_size={s}" for s in PGC_BATCH] if job == SCORECAM else \
        [f"captum ppe={pe}" for pe in PPE]
    return [*OURS, *theirs]


def make_case(job: str, case: str, device: str | None) -> Callable[[], object]:
    """The call that case ``case`` of ``job`` times (model and images made beforehand)."""
    handle = zoo.load("efficientnet_lite0", device=device)
    for p in handle.parameters():
        p.requires_grad_(False)
    if case in OURS:
        handle.precision, handle.compile_mode = OURS[case]
    if job == SCORECAM:
        image = photos(handle, 1)
        if case in OURS:
            return lambda: interpret.scorecam(handle, image, TARGET, layer=LAYER)
        cam = ScoreCAM(model=handle, target_layers=[handle.layer(LAYER)])
        cam.batch_size = int(case.rsplit("=", 1)[1])
        return lambda: cam(image, targets=[ClassifierOutputTarget(TARGET)])
    count, window, stride = OCCLUSION[job]
    images = photos(handle, count)
    if case in OURS:
        return lambda: interpret.occlusion(handle, images, TARGET, window=window, stride=stride, fill="gray",
                                           score="logit")
    captum = Occlusion(handle)
    per_eval = int(case.rsplit("=", 1)[1])
    return lambda: captum.attribute(images, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                    baselines=0.5, target=TARGET, perturbations_per_eval=per_eval)


def run_case(job: str, case: str, device: str | None) -> float:
    """Seconds of one call of the case in this (fresh) process."""
    call = make_case(job, case, device)
    dev = zoo.pick_device(device)
    sync(dev)
    start = time.perf_counter()
    call()
    sync(dev)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--big-rounds", type=int, default=1, help="rounds of the 3025-window and 16-image jobs")
    parser.add_argument("--quick", action="store_true", help="only the 169-window occlusion and Score-CAM")
    parser.add_argument("--json", default=None)
    parser.add_argument("--case", nargs=2, metavar=("JOB", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(run_case(*args.case, args.device))
        return

    handle = zoo.load("efficientnet_lite0", device=args.device)
    device = handle.device
    auto = auto_batch_size(handle)
    jobs = ["occlusion, 169 windows, 1 image", SCORECAM]
    if not args.quick:
        jobs += ["occlusion, 3025 windows, 1 image", "occlusion, 169 windows x 16 images"]
    sizes = [8, 16, 32] if device.type == "cpu" else [64, 128, 256]
    limits = interleaved(limit_cases(handle, photos(handle, 1), sizes, backward=False), device, rounds=3)
    fwd32, path32, size32 = best_limit(limits, "forward", fp32_only=True)
    fwd, path, size = best_limit(limits, "forward")
    for job in jobs[:2]:  # fills inductor's on-disk cache for the chunk shapes (the same in every job)
        for case in ("cnnviz compiled fp32", "cnnviz compiled bf16"):
            in_fresh_process(__file__, job, case, args.device)
    results = []
    for job in jobs:
        seconds = {case: float("inf") for case in cases_of(job)}
        for _ in range(args.rounds if rows_of(job) < 1000 else args.big_rounds):
            for case in seconds:
                seconds[case] = min(seconds[case], in_fresh_process(__file__, job, case, args.device))
        rows = rows_of(job)
        reference = min(v for k, v in seconds.items() if k not in OURS)
        results.append({"job": job, "rows": rows, "seconds": seconds, "reference": reference,
                        "limit_seconds": rows / fwd, "fp32_limit_seconds": rows / fwd32})
        print(job, {k: round(v, 2) for k, v in seconds.items()}, flush=True)

    print(f"\n## Forward-only fast paths: efficientnet_lite0, 224 px, {device_name(device)}, "
          f"torch {torch.__version__}, {datetime.date.today()}")
    print(f"`python bench/fastpath.py --rounds {args.rounds} --big-rounds {args.big_rounds}`: every case in a fresh process, best of {args.rounds} rounds ({args.big_rounds} for the jobs over 1000 rows); "
          f"cnnviz's batch {auto}. Limit: {fwd:.1f} images/s ({path}, batch {size}); fp32 limit {fwd32:.1f} "
          f"images/s ({path32}, batch {size32}).\n")
    print("| job | case | seconds | × peer's best | of the limit | of the fp32 limit |")
    print("|---|---|---:|---:|---:|---:|")
    for row in results:
        for case, took in sorted(row["seconds"].items(), key=lambda kv: kv[1]):
            print(f"| {row['job']} | {case} | {took:.2f} | {row['reference'] / took:.2f} | "
                  f"{row['limit_seconds'] / took:.2f} | {row['fp32_limit_seconds'] / took:.2f} |")
    print("\nLimits by path (images/s): " + ", ".join(
        f"{name.split('|')[1]} b{name.split('|')[2]} {int(name.split('|')[2]) / t:.1f}" for name, t in limits.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name(device), "date": str(datetime.date.today()), "limit": [fwd, path, size],
                       "fp32_limit": [fwd32, path32, size32], "limits": limits, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
