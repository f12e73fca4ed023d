"""Incremental occlusion against today's full passes and captum, side by side in one run, plus where the work goes.

For efficientnet_lite0 at 224 px on one image (chelsea, its class), at 169, 729 and 3025 windows
(32/16, 16/8 and 8/4 px window/stride), it times in one process, cases alternating (``timing.best_of``,
no warm-up run: eager CPU needs none, and a 3025-window case costs minutes on a shared CPU):

- today's default path: ``occlusion(incremental="off")``, every window a full forward pass
  (eager; the compile is left out here: ``bench/fastpath.py`` measures it);
- captum's ``Occlusion`` at each ``perturbations_per_eval`` of a small sweep (8 and 32 by default), the best
  counting;
- ``incremental="exact"`` (and, with ``--approximate``, ``incremental="approximate"``),

all on a gray fill and the logit, so that every map can be compared with today's (max difference over its
range). Then, for each window count, the convolutions' multiply-adds by map side: the full pass's and the share
the engine computes (from the boxes it really ran on 256 windows spread over the grid), and with
``--approximate`` the approximate maps' agreement with the exact ones (Spearman, SSIM) on the shipped photos;
with ``--drill-down``, the same for Krypton's adaptive drill-down (simulated from the exact window scores).

Usage:
    python bench/incremental.py [--windows 169 729 3025] [--rounds 1] [--per-eval 8 32] [--approximate] [--drill-down] [--per-layer] [--no-timing] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import torch
import torch.nn.functional as F
from captum.attr import Occlusion
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from timing import best_of, device_name

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.incremental import IncrementalForward
from cnnviz.interpret.attribution.incremental.choice import APPROXIMATE_SHARE
from cnnviz.interpret.attribution.incremental.fusion import same_conv2d
from cnnviz.interpret.attribution.occlusion import spread_windows, window_origins

GEOMETRY = {169: (32, 16), 729: (16, 8), 3025: (8, 4), 49: (64, 32)}
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "horse")


def conv_work(handle: zoo.ModelHandle, image: torch.Tensor, window: int, stride: int, cap: float | None,
              sample: int = 256) -> list[tuple[str, int, int, float]]:
    """Per convolution: (name, its map side, full multiply-adds per row, share the engine computed), from the boxes
    the engine really ran over ``sample`` windows spread evenly over the grid, in batches of 8 as occlusion runs
    them (a box is one size for a whole batch)."""
    engine = IncrementalForward.build(handle, image, cap)
    params = dict(engine.graph.named_parameters()) | dict(engine.graph.named_buffers())
    convs = [n for n in engine.graph.graph.nodes if n.op == "call_function" and n.target in (F.conv2d, same_conv2d)]
    origins = window_origins(image.shape[-1], window, stride)
    ys, xs = (grid.flatten() for grid in torch.meshgrid(origins, origins, indexing="ij"))
    chosen = torch.linspace(0, ys.numel() - 1, min(sample, ys.numel())).round().long()
    ys, xs = ys[chosen], xs[chosen]
    computed = {n.name: 0.0 for n in convs}
    for start in range(0, ys.numel(), 8):
        top, left = ys[start:start + 8], xs[start:start + 8]
        engine.boxes.clear()
        engine(torch.zeros_like(top), top, left, torch.full((top.numel(), 3, window, window), 0.5))
        for node in convs:
            full = engine.clean[node.name].shape[-2] * engine.clean[node.name].shape[-1]
            box = engine.boxes.get(node.name)
            computed[node.name] += top.numel() * (box[2] * box[3] / full if box else 1.0)
    return [(node.meta.get("source", str(node.args[1].target)), engine.clean[node.name].shape[-1],
             params[node.args[1].target].numel() * engine.clean[node.name][0, 0].numel(), computed[node.name] / ys.numel())
            for node in convs]


def by_stage(work: list[tuple[str, int, int, float]]) -> dict[int, tuple[float, float]]:
    """Per output map side: (full M multiply-adds per row, share computed)."""
    stages: dict[int, list[float]] = {}
    for _, side, macs, share in work:
        total = stages.setdefault(side, [0.0, 0.0])
        total[0] += macs
        total[1] += macs * share
    return {side: (macs / 1e6, done / macs) for side, (macs, done) in stages.items()}


def agreement(handle: zoo.ModelHandle, names: tuple[str, ...], window: int, stride: int) -> list[tuple[float, float]]:
    """(Spearman, SSIM) of the approximate map against the exact one, per photo."""
    scores = []
    for name in names:
        image = handle.prepare([zoo.load_image(name)])
        exact = interpret.occlusion(handle, image, window=window, stride=stride, incremental="exact")[0, 0]
        approx = interpret.occlusion(handle, image, window=window, stride=stride, incremental="approximate")[0, 0]
        scores.append(similarity(exact, approx))
    return scores


def drill_down(handle: zoo.ModelHandle, names: tuple[str, ...], window: int, stride: int,
               shares: tuple[float, ...] = (0.1, 0.25, 0.5)) -> dict[float, list[tuple[float, float, float]]]:
    """Krypton's adaptive drill-down, simulated from exact window scores: every other window in each direction
    (exact), the rest read off the coarse grid bilinearly, except the ``share`` of them where the coarse
    neighbours disagree most, which run exactly. Per share, per photo: (Spearman, SSIM, share of windows run)."""
    origins = window_origins(224, window, stride)
    side = origins.numel()
    ys, xs = (grid.flatten() for grid in torch.meshgrid(origins, origins, indexing="ij"))
    coarse = torch.zeros(side, side, dtype=torch.bool)
    coarse[::2, ::2] = True
    results: dict[float, list[tuple[float, float, float]]] = {share: [] for share in shares}
    for name in names:
        image = handle.prepare([zoo.load_image(name)])
        with torch.no_grad():
            engine = IncrementalForward.build(handle, image)
            target = int(engine.clean_logits.argmax())
            drops = torch.cat([engine.clean_logits[0, target] - engine(
                torch.zeros_like(ys[at:at + 32]), ys[at:at + 32], xs[at:at + 32],
                torch.full((ys[at:at + 32].numel(), 3, window, window), 0.5))[:, target] for at in range(0, ys.numel(), 32)])
        grid = drops.view(side, side)[::2, ::2][None, None]
        guess = F.interpolate(grid, size=(side, side), mode="bilinear", align_corners=True).flatten()
        disagreement = F.interpolate(F.max_pool2d(grid, 2, 1) + F.max_pool2d(-grid, 2, 1), size=(side, side),
                                     mode="nearest").flatten().masked_fill(coarse.flatten(), -float("inf"))
        exact_map = spread_windows(drops[None], ys, xs, window, 224, 224)[0, 0]
        for share in shares:
            refined = disagreement.topk(int(share * int((~coarse).sum()))).indices
            run = coarse.flatten().clone()
            run[refined] = True
            approx_map = spread_windows(torch.where(run, drops, guess)[None], ys, xs, window, 224, 224)[0, 0]
            results[share].append((*similarity(exact_map, approx_map), float(run.float().mean())))
    return results


def similarity(exact: torch.Tensor, approx: torch.Tensor) -> tuple[float, float]:
    """(Spearman, SSIM) of two maps, SSIM over the exact map's range."""
    spread = float(exact.max() - exact.min()) or 1.0
    return (float(spearmanr(exact.flatten(), approx.flatten()).statistic),
            float(structural_similarity(exact.numpy(), approx.numpy(), data_range=spread)))


def compare(handle: zoo.ModelHandle, image: torch.Tensor, target: int, count: int, args: argparse.Namespace) -> None:
    """Print the paths' seconds side by side, and each map's distance to today's."""
    window, stride = GEOMETRY[count]
    maps: dict[str, torch.Tensor] = {}

    def ours(mode: str) -> None:
        maps[mode] = interpret.occlusion(handle, image, target, window=window, stride=stride, fill="gray",
                                         score="logit", incremental=mode)[0, 0]

    def theirs(per_eval: int) -> None:
        maps[f"captum ppe={per_eval}"] = Occlusion(handle).attribute(
            image, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.5,
            target=target, perturbations_per_eval=per_eval)[0, 0]

    cases = {"today (incremental=off)": lambda: ours("off"), "default (incremental=auto)": lambda: ours("auto"),
             "incremental exact": lambda: ours("exact")}
    cases |= {f"captum ppe={n}": lambda n=n: theirs(n) for n in args.per_eval}
    if args.approximate:
        cases["incremental approximate"] = lambda: ours("approximate")
    seconds = best_of(cases, image.device, args.rounds)
    today, captum = seconds["today (incremental=off)"], min(seconds[f"captum ppe={n}"] for n in args.per_eval)
    reference = maps["off"]
    spread = float(reference.max() - reference.min())
    print(f"timed side by side; load average {os.getloadavg()[0]:.1f} after\n\n"
          "| case | seconds | x today | x captum best | max diff / range vs today |\n|---|---|---|---|---|")
    for name, took in seconds.items():
        key = {"today (incremental=off)": "off", "default (incremental=auto)": "auto", "incremental exact": "exact",
               "incremental approximate": "approximate"}.get(name, name)
        diff = float((maps[key] - reference).abs().max()) / spread
        print(f"| {name} | {took:.1f} | {today / took:.2f} | {captum / took:.2f} | {diff:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[169, 729, 3025], choices=sorted(GEOMETRY))
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds (no warm-up run: eager CPU needs none)")
    parser.add_argument("--photos", type=int, default=4, help="photos for the approximate mode's agreement")
    parser.add_argument("--per-eval", type=int, nargs="+", default=[8, 32],
                        help="captum's perturbations_per_eval values tried; the best counts")
    parser.add_argument("--approximate", action="store_true", help="also time the approximate mode and its agreement")
    parser.add_argument("--drill-down", action="store_true", help="also the adaptive drill-down's agreement")
    parser.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True, help="time the paths")
    parser.add_argument("--per-layer", action="store_true", help="also the share each convolution computes")
    parser.add_argument("--smoke", action="store_true", help="49 windows, one photo: checks the script runs")
    args = parser.parse_args()
    windows = [49] if args.smoke else args.windows
    handle = zoo.load("efficientnet_lite0", device="cpu")
    handle.compile_mode = "off"
    image = handle.prepare([zoo.load_image("chelsea")])
    target = int(handle(image).argmax())
    device = image.device
    print(f"# Incremental occlusion, efficientnet_lite0 224 px, 1 image; {device_name(device)}; "
          f"{datetime.date.today()}; load average {os.getloadavg()[0]:.1f} at the start\n")
    for count in windows:
        window, stride = GEOMETRY[count]
        print(f"## {count} windows ({window} px, stride {stride})\n")
        if args.timing:
            compare(handle, image, target, count, args)
        layers = conv_work(handle, image, window, stride, None)
        stages = {"exact": by_stage(layers)}
        if args.approximate:
            stages["approximate"] = by_stage(conv_work(handle, image, window, stride, APPROXIMATE_SHARE))
        total = sum(macs for macs, _ in stages["exact"].values())
        print(f"\nconvolution multiply-adds per occluded image, by map side: full pass {total:.0f} M\n\n"
              "| map side | full M MACs | " + " | ".join(f"{mode} computes" for mode in stages) + " |\n|---|---|"
              + "---|" * len(stages))
        for side, (macs, _) in stages["exact"].items():
            print(f"| {side} px | {macs:.0f} | " + " | ".join(f"{work[side][1]:.0%}" for work in stages.values()) + " |")
        print("| all | " + f"{total:.0f} | " + " | ".join(
            f"{sum(m * c for m, c in work.values()) / total:.0%}" for work in stages.values()) + " |\n")
        if args.per_layer:
            print("| convolution | map side | full M MACs | exact computes | M MACs saved |\n|---|---|---|---|---|")
            for name, side, macs, share in layers:
                print(f"| {name} | {side} px | {macs / 1e6:.1f} | {share:.0%} | {macs * (1 - share) / 1e6:.1f} |")
            print()
        if args.approximate:
            scores = agreement(handle, PHOTOS[:1 if args.smoke else args.photos], window, stride)
            rho, ssim = zip(*scores)
            print(f"approximate vs exact over {len(scores)} photos: Spearman min {min(rho):.4f} mean "
                  f"{sum(rho) / len(rho):.4f}; SSIM min {min(ssim):.4f} mean {sum(ssim) / len(ssim):.4f}\n")
        if args.drill_down:
            print("| drill-down: windows run | Spearman min-mean | SSIM min-mean |\n|---|---|---|")
            for scores in drill_down(handle, PHOTOS[:1 if args.smoke else args.photos], window, stride).values():
                rho, ssim, run = zip(*scores)
                print(f"| {run[0]:.0%} | {min(rho):.3f}-{sum(rho) / len(rho):.3f} | {min(ssim):.3f}-{sum(ssim) / len(ssim):.3f} |")
            print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
