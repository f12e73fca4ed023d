"""Forward-only methods on the fast paths, side by side with captum, pytorch-grad-cam and the machine's limit.

One run, one device. For occlusion (169 and 3025 windows on one image, and 169 windows on each of 16
images) and Score-CAM (one image, ``blocks.14``'s 192 channels), it times:

- cnnviz eager fp32 (``compile="off"``), cnnviz compiled fp32 and bf16 (``compile="on"``) *end to end
  including the compile*: dynamo's in-process cache is reset before every compiled run, so each one
  pays what a new process pays with inductor's warm on-disk cache; cnnviz's default (``compile="auto"``,
  same reset), and eager bf16;
- captum's Occlusion at each ``perturbations_per_eval`` in PPE (its best is the reference) and
  pytorch-grad-cam's ScoreCAM at each ``batch_size``; both on the same handle (channels-last fp32);
- the limit (``bench/limits.py``): the bare model's best forward throughput over eager NCHW,
  channels-last, compiled fp32, bf16 and compiled bf16, at several batch sizes.

Big cases run once per round without a warm-up run (each compiled run compiles anyway); the first
compile of a shape fills inductor's cache (a warm-up pass does that before timing starts).

Usage:
    python bench/fastpath.py [--device cuda] [--rounds 2] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
from collections.abc import Callable

import torch
import torch._dynamo
from captum.attr import Occlusion
from limits import best_limit, limit_cases
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from timing import best_of, device_name, interleaved

import interpret
import zoo
from interpret.batching import auto_batch_size

PPE = (8, 16, 32, 64)
PGC_BATCH = (16, 32, 64)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "horse", "cat", "immunohistochemistry")


def variant(handle: zoo.ModelHandle, precision: str, compile: str) -> zoo.ModelHandle:
    copied = copy.deepcopy(handle)
    copied.precision, copied.compile_mode = precision, compile
    return copied


def ours(handle: zoo.ModelHandle, run: Callable[[zoo.ModelHandle], object]) -> dict[str, Callable[[], object]]:
    """cnnviz's paths for one job: eager fp32/bf16, compiled fp32/bf16 and auto, compiles paid each run."""
    cases: dict[str, Callable[[], object]] = {}
    for precision in ("fp32", "bf16"):
        for mode in ("off", "on", "auto") if precision == "fp32" else ("off", "on"):
            label = {"off": "eager", "on": "compiled", "auto": "auto"}[mode]

            def case(precision: str = precision, mode: str = mode) -> None:
                torch._dynamo.reset()  # what a new process pays: trace again, inductor's cache on disk is warm
                run(variant(handle, precision, mode))
            cases[f"cnnviz {label} {precision}"] = case
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only the 169-window occlusion and Score-CAM")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    handle = zoo.load("efficientnet_lite0", device=args.device)
    for p in handle.parameters():
        p.requires_grad_(False)
    device = handle.device
    photos = handle.prepare([zoo.load_image(name) for name in PHOTOS])
    image, target = photos[:1], 282
    batch = photos.repeat(2, 1, 1, 1)[:16]
    auto = auto_batch_size(handle)
    sizes = [8, 16, 32] if device.type == "cpu" else [64, 128, 256]

    jobs: dict[str, tuple[int, Callable[[zoo.ModelHandle], object], dict[str, Callable[[], object]]]] = {}

    def occlusion_job(name: str, images: torch.Tensor, window: int, stride: int) -> None:
        side = (224 - window) // stride + 1
        rows = images.shape[0] * (side * side + 1)
        captum = Occlusion(handle)
        theirs = {f"captum ppe={pe}": (lambda pe=pe: captum.attribute(
            images, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.5,
            target=target, perturbations_per_eval=pe)) for pe in PPE}
        jobs[name] = (rows, lambda h: interpret.occlusion(h, images, target, window=window, stride=stride,
                                                          fill="gray", score="logit"), theirs)

    occlusion_job("occlusion, 169 windows, 1 image", image, 32, 16)
    layer = "blocks.14"
    channels = 192
    pgc = ScoreCAM(model=handle, target_layers=[handle.layer(layer)])

    def pgc_run(size: int) -> None:
        pgc.batch_size = size
        pgc(image, targets=[ClassifierOutputTarget(target)])
    jobs[f"Score-CAM, {layer} ({channels} ch), 1 image"] = (
        channels + 1, lambda h: interpret.scorecam(h, image, target, layer=layer),
        {f"pytorch-grad-cam batch_size={s}": (lambda s=s: pgc_run(s)) for s in PGC_BATCH})
    if not args.quick:
        occlusion_job("occlusion, 3025 windows, 1 image", image, 8, 4)
        occlusion_job("occlusion, 169 windows x 16 images", batch, 32, 16)

    limits = interleaved(limit_cases(handle, image, sizes, backward=False), device, rounds=3)
    fwd32, path32, size32 = best_limit(limits, "forward", fp32_only=True)
    fwd, path, size = best_limit(limits, "forward")
    # Warm-up: fills inductor's on-disk cache for the chunk shapes the jobs use.
    for rows, run, _ in jobs.values():
        run(variant(handle, "fp32", "on"))
        run(variant(handle, "bf16", "on"))
        break
    results = []
    for name, (rows, run, theirs) in jobs.items():
        cases = {**ours(handle, run), **theirs}
        seconds = best_of(cases, device, args.rounds)
        reference = min(v for k, v in seconds.items() if not k.startswith("cnnviz"))
        results.append({"job": name, "rows": rows, "seconds": seconds, "reference": reference,
                        "limit_seconds": rows / fwd, "fp32_limit_seconds": rows / fwd32})
        print(name, {k: round(v, 2) for k, v in seconds.items()}, flush=True)

    print(f"\n## Forward-only fast paths: efficientnet_lite0, 224 px, {device_name(device)}, "
          f"torch {torch.__version__}, {datetime.date.today()}")
    print(f"`python bench/fastpath.py --rounds {args.rounds}`, best of {args.rounds} rounds; cnnviz's batch {auto}. "
          f"Limit: {fwd:.1f} images/s ({path}, batch {size}); fp32 limit {fwd32:.1f} images/s ({path32}, batch "
          f"{size32}).\n")
    print("| job | case | seconds | × reference (peer's best) | of the limit | of the fp32 limit |")
    print("|---|---|---:|---:|---:|---:|")
    for row in results:
        for case, took in sorted(row["seconds"].items(), key=lambda kv: kv[1]):
            print(f"| {row['job']} | {case} | {took:.2f} | {row['reference'] / took:.2f} | "
                  f"{row['limit_seconds'] / took:.2f} | {row['fp32_limit_seconds'] / took:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name(device), "date": str(datetime.date.today()), "limit": [fwd, path, size],
                       "fp32_limit": [fwd32, path32, size32], "limits": limits, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
