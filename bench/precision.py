"""Reduced precision (``--precision bf16``) against fp32: speed and how far each method's maps move.

For each method, both precisions run side by side in interleaved rounds on the same photos; the table
gives their seconds, the speed-up, and the Spearman correlation of each bf16 map with its fp32 map
(min and mean over the photos), plus the largest difference as a share of the fp32 map's range.

    OMP_NUM_THREADS=2 python bench/precision.py [--device cuda] [--methods occlusion gradcam ...]
"""

from __future__ import annotations

import argparse
import datetime

import torch
from timing import device_name, interleaved

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.evaluate.statistics import spearman

PHOTOS = ("chelsea", "coffee", "rocket")
METHODS = ("occlusion", "gradient", "integrated_gradients", "smoothgrad", "gradcam", "layercam", "scorecam", "rise")
OPTIONS = {"rise": {"masks": 1000}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    exact = zoo.load("efficientnet_lite0", device=args.device)
    fast = zoo.load("efficientnet_lite0", device=args.device, precision="bf16")
    images = exact.prepare([zoo.load_image(p) for p in PHOTOS])
    print(f"Device: {device_name(exact.device)}, torch {torch.__version__}, {datetime.date.today()}, "
          f"efficientnet_lite0, {len(PHOTOS)} photos ({', '.join(PHOTOS)})")
    print("| method | fp32 s | bf16 s | speed-up | Spearman min / mean | max difference / range |")
    print("|---|---|---|---|---|---|")
    for name in args.methods:
        method = interpret.get_method(name)
        options = OPTIONS.get(name, {})
        maps: dict[str, torch.Tensor] = {}

        def case(handle: zoo.ModelHandle, key: str) -> None:
            maps[key] = method.fn(handle, images, None, **options).flatten(1)

        seconds = interleaved({"fp32": lambda: case(exact, "fp32"), "bf16": lambda: case(fast, "bf16")},
                              exact.device, rounds=args.rounds)
        rho = spearman(maps["bf16"], maps["fp32"])
        span = (maps["fp32"].amax(1) - maps["fp32"].amin(1)).clamp(min=1e-12)
        worst = float(((maps["bf16"] - maps["fp32"]).abs().amax(1) / span).max())
        print(f"| {name} | {seconds['fp32']:.2f} | {seconds['bf16']:.2f} | {seconds['fp32'] / seconds['bf16']:.2f}x | "
              f"{float(rho.min()):.3f} / {float(rho.mean()):.3f} | {worst:.2f} |", flush=True)


if __name__ == "__main__":
    main()
