"""The faithfulness leaderboard: every registered attribution method's insertion and deletion AUCs and seconds,
read against random maps on the same photos.

Insertion reveals the most salient pixels first on a blurred canvas (higher AUC is better); deletion moves
them first onto the blurred copy (``deletion_blur``, lower is better) or to black (``deletion_black``, the
form on which no method beats a random map), as ``cnnviz evaluate`` scores them. Each photo gets a band of
8 random maps (:func:`interpret.evaluate.random_band`); "beats random" counts the photos on which the
method's score lies beyond that band on the better side. Each method runs with the options below (the
costly ones trimmed so the board runs in minutes on a CPU); seconds are the method's own, for all the
photos in one call.

Usage:
    python bench/leaderboard.py [--device cuda] [--photos chelsea coffee rocket] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

from timing import device_name

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.evaluate import deletion_insertion, random_band

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
    band = random_band(handle, images, draws=8, deletion_to="blur")
    black_band = random_band(handle, images, draws=8, deletion_to="black")
    rows = [{"method": "random (8 maps a photo)", "group": "-", "insertion": band.insertion.mean().item(),
             "deletion_blur": band.deletion.mean().item(), "deletion_black": black_band.deletion.mean().item(),
             "beats_insertion": "-", "beats_deletion_blur": "-", "beats_deletion_black": "-", "seconds": 0.0}]
    for name in names:
        base, options = VARIANTS.get(name, (name, OPTIONS.get(name, {})))
        method = interpret.get_method(base)
        start = time.perf_counter()
        maps = method.fn(handle, images, None, **options)
        seconds = time.perf_counter() - start
        blur = deletion_insertion(handle, images, maps, deletion_to="blur")
        black = deletion_insertion(handle, images, maps, deletion_to="black")
        count = len(args.photos)
        rows.append({"method": name, "group": method.group, "insertion": blur.insertion_auc.mean().item(),
                     "deletion_blur": blur.deletion_auc.mean().item(),
                     "deletion_black": black.deletion_auc.mean().item(),
                     "beats_insertion": f"{int(band.beats('insertion', blur.insertion_auc).sum())}/{count}",
                     "beats_deletion_blur": f"{int(band.beats('deletion', blur.deletion_auc).sum())}/{count}",
                     "beats_deletion_black": f"{int(black_band.beats('deletion', black.deletion_auc).sum())}/{count}",
                     "seconds": seconds, "options": options})
        print(f"{name:<42} insertion {rows[-1]['insertion']:.3f} ({rows[-1]['beats_insertion']})  deletion/blur "
              f"{rows[-1]['deletion_blur']:.3f} ({rows[-1]['beats_deletion_blur']})  deletion/black "
              f"{rows[-1]['deletion_black']:.3f} ({rows[-1]['beats_deletion_black']})  {seconds:.1f} s", flush=True)

    print(f"\n## Faithfulness leaderboard: {args.model}, {', '.join(args.photos)}, {device_name(handle.device)}, "
          f"{datetime.date.today()}\n")
    print("| method | family | insertion AUC (higher better) | beats random | deletion onto blur (lower better) "
          "| beats random | deletion to black | beats random | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in sorted(rows, key=lambda r: -r["insertion"]):
        print(f"| {row['method']} | {row['group']} | {row['insertion']:.3f} | {row['beats_insertion']} | "
              f"{row['deletion_blur']:.3f} | {row['beats_deletion_blur']} | {row['deletion_black']:.3f} | "
              f"{row['beats_deletion_black']} | {row['seconds']:.1f} |")
    for metric, b in (("insertion", band), ("deletion onto blur", band), ("deletion to black", black_band)):
        key = "insertion" if metric == "insertion" else "deletion"
        mean, low, high = b.interval(key)
        print(f"\nrandom band, {metric}: " + ", ".join(f"{p} {m:.3f} [{lo:.3f}, {hi:.3f}]" for p, m, lo, hi in
                                                    zip(args.photos, mean.tolist(), low.tolist(), high.tolist())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "photos": args.photos, "device": device_name(handle.device),
                       "date": str(datetime.date.today()), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
