"""The faithfulness leaderboard: every registered attribution method's deletion and insertion AUC and seconds.

Deletion turns the most salient pixels black (lower AUC is better), insertion reveals them on a blurred
canvas (higher is better), as ``cnnviz evaluate METHOD --metrics deletion insertion`` scores them, next
to random maps. Each method runs with the options below (the costly ones trimmed so the board runs in
minutes on a CPU); seconds are the method's own, for all the photos in one call.

Usage:
    python bench/leaderboard.py [--device cuda] [--photos chelsea coffee rocket] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

from timing import device_name

import interpret
import zoo
from interpret.evaluate.faithfulness import deletion_insertion, random_maps

PHOTOS = ["chelsea", "coffee", "rocket"]
OPTIONS: dict[str, dict[str, object]] = {
    "smoothgrad": {"samples": 25}, "integrated_gradients": {"steps": 16},
    "rise": {"masks": 500}, "extremal": {"steps": 150},
    "captum:ShapleyValueSampling": {"segments": 7, "samples": 4}, "captum:FeatureAblation": {"segments": 10},
    "captum:Occlusion": {"segments": 7}, "captum:Lime": {"segments": 10, "samples": 50},
    "captum:KernelShap": {"segments": 10, "samples": 50}, "captum:NoiseTunnel(Saliency)": {"samples": 10},
    "captum:NoiseTunnel(IntegratedGradients)": {"samples": 4, "steps": 8}, "captum:GradientShap": {"samples": 10},
    "captum:IntegratedGradients": {"steps": 16},
}
# Variants worth a row of their own: (method, options).
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "extremal, preserve on blur, 3 levels to 0.3": ("extremal", {"area": 0.3, "levels": 3, "steps": 150}),
    "rise, 2000 masks": ("rise", {"masks": 2000}),
    "rise, blur fill, 1000 masks": ("rise", {"masks": 1000, "fill": "blur"}),
    "extremal, preserve on blur 14, 4 levels to 0.5": ("extremal", {"area": 0.5, "levels": 4, "steps": 100,
                                                                   "blur": 14.0}),
    "extremal, delete to black, 3 levels to 0.15": ("extremal", {"area": 0.15, "levels": 3, "steps": 150,
                                                                 "variant": "delete", "blur": 0.0}),
}
SKIP = {"captum:LRP"}  # has no rule for EfficientNet-Lite's padded convolutions (says so in one line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--photos", nargs="+", default=PHOTOS)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every attribution method")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    handle = zoo.load(args.model, device=args.device)
    images = handle.prepare([zoo.load_image(name) for name in args.photos])
    names = args.methods or [*[m.name for m in interpret.methods("attribution") if m.name not in SKIP], *VARIANTS]
    rows = []
    curves = deletion_insertion(handle, images, random_maps(images))
    rows.append({"method": "random", "group": "-", "deletion": curves.deletion_auc.mean().item(),
                 "insertion": curves.insertion_auc.mean().item(), "seconds": 0.0})
    for name in names:
        base, options = VARIANTS.get(name, (name, OPTIONS.get(name, {})))
        method = interpret.get_method(base)
        start = time.perf_counter()
        maps = method.fn(handle, images, None, **options)
        seconds = time.perf_counter() - start
        curves = deletion_insertion(handle, images, maps)
        rows.append({"method": name, "group": method.group, "deletion": curves.deletion_auc.mean().item(),
                     "insertion": curves.insertion_auc.mean().item(), "seconds": seconds,
                     "options": options})
        print(f"{name:<42} deletion {rows[-1]['deletion']:.3f}  insertion {rows[-1]['insertion']:.3f}  "
              f"{seconds:.1f} s", flush=True)

    print(f"\n## Faithfulness leaderboard: {args.model}, {', '.join(args.photos)}, {device_name(handle.device)}, "
          f"{datetime.date.today()}\n")
    print("| method | family | deletion AUC (lower better) | insertion AUC (higher better) | seconds |")
    print("|---|---|---:|---:|---:|")
    for row in sorted(rows, key=lambda r: r["deletion"]):
        print(f"| {row['method']} | {row['group']} | {row['deletion']:.3f} | {row['insertion']:.3f} | "
              f"{row['seconds']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "photos": args.photos, "device": device_name(handle.device),
                       "date": str(datetime.date.today()), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
