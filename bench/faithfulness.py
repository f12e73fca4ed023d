"""Faithfulness of the attribution methods on real photos, with intervals: the numbers behind the README.

Every metric of ``cnnviz evaluate`` over the skimage photos that show ImageNet
classes, per method next to the random baseline, each mean with a 95 %
percentile-bootstrap interval over the photos and the paired difference to
random. The randomization check is repeated with several weight draws
(``--draws``), so its spread covers the random weights too, not only the photos.

Usage:
    python bench/faithfulness.py [--device cuda] [--draws 5] [--road] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time

import torch
from timing import device_name

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.evaluate.scoring import EvaluationOptions, evaluate_images, method_maker, random_maker, summary_rows
from cnnviz.interpret.evaluate.statistics import summarize
from cnnviz.zoo.core import write_json

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket", "motorcycle", "camera"]
METHODS = ["gradcam", "gradient", "guided_backprop", "integrated_gradients", "occlusion"]
RANDOMIZED = ["gradcam", "gradient", "guided_backprop"]  # occlusion and IG take minutes per draw on a CPU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--randomized", nargs="+", default=RANDOMIZED, help="methods of the randomization check")
    parser.add_argument("--draws", type=int, default=5, help="weight draws of the randomization check")
    parser.add_argument("--randomize", type=int, default=2, help="blocks re-initialized, top down")
    parser.add_argument("--road", action="store_true", help="also ROAD (slow on CPU: a sparse solve per removal)")
    parser.add_argument("--only-randomization", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    handle = zoo.load("efficientnet_lite0", device=args.device)
    makers = {"random": random_maker(), **{m: method_maker(interpret.get_method(m, "attribution").fn)
                                           for m in args.methods}}
    metrics = ["deletion", "insertion", "gini", "entropy"] + (["road"] if args.road else [])
    start = time.perf_counter()
    rows = [] if args.only_randomization else summary_rows(
        evaluate_images(handle, PHOTOS, makers, metrics=metrics, options=EvaluationOptions(), progress=False))
    print(f"deletion/insertion done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    randomized = {m: method_maker(interpret.get_method(m, "attribution").fn) for m in args.randomized}
    draws = []
    for draw in range(args.draws):
        options = EvaluationOptions(randomize=args.randomize, measures=("spearman", "ssim", "hog"), seed=draw)
        for absolute in (True, False):
            chosen = EvaluationOptions(**{**vars(options), "absolute": absolute})
            draws += [(draw, absolute, r) for r in evaluate_images(handle, PHOTOS, randomized, metrics=["randomization"],
                                                                   options=chosen, progress=False)]
        print(f"randomization draw {draw} done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    spread = []
    for method in args.randomized:
        for absolute in (True, False):
            for name in draws[0][2].scores:
                values = torch.tensor([r.scores[name] for _, a, r in draws if a == absolute and r.method == method])
                notes = sorted({r.notes[name] for _, a, r in draws if a == absolute and r.method == method
                                and name in r.notes})
                spread.append({"method": method, "absolute": absolute, "metric": name,
                               **summarize(values).as_dict(), "notes": "; ".join(notes)})
    seconds = time.perf_counter() - start
    print(f"efficientnet_lite0 on {len(PHOTOS)} photos ({', '.join(PHOTOS)}), {device_name(handle.device)}, "
          f"{datetime.date.today()}, {seconds:.0f} s")
    print("| metric | method | mean [95% interval] | vs random [95% interval] |")
    print("|---|---|---|---|")
    for row in rows:
        versus = (f"{row['vs_baseline_mean']:+.3f} [{row['vs_baseline_low']:+.3f}, {row['vs_baseline_high']:+.3f}]"
                  if "vs_baseline_mean" in row else "")
        print(f"| {row['metric']} | {row['method']} | {row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}] | {versus} |")
    print(f"\nrandomization over {args.draws} weight draws x {len(PHOTOS)} photos (top {args.randomize} blocks)")
    print("| method | compared | measure | mean [95% interval] | std | undefined |")
    print("|---|---|---|---|---|---|")
    for row in spread:
        cell = "undefined" if math.isnan(row["mean"]) else f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"
        print(f"| {row['method']} | {'abs' if row['absolute'] else 'signed'} | {row['metric']} | {cell} | "
              f"{row['std']:.3f} | {row['undefined']} |")
    if args.json:
        write_json(args.json, {"device": device_name(handle.device), "date": str(datetime.date.today()),
                               "photos": PHOTOS, "summary": rows, "randomization": spread, "seconds": seconds})


if __name__ == "__main__":
    main()
