"""Incremental occlusion against today's full passes and captum, side by side in one run, plus where the work goes.

For efficientnet_lite0 at 224 px on one image (chelsea, its class), at 169, 729 and 3025 windows
(32/16, 16/8 and 8/4 px window/stride), it times in one process, cases interleaved
(``timing.interleaved``: a warm-up run each, then shuffled rounds, best kept):

- today's default path: ``occlusion(incremental="off")``, every window a full forward pass
  (eager; the compile is left out here: ``bench/fastpath.py`` measures it);
- captum's ``Occlusion`` at its best ``perturbations_per_eval`` (8 on this CPU, bench/fastpath.py);
- ``incremental="exact"`` and ``incremental="approximate"``.

Then, for each window size, the convolutions' multiply-adds layer by layer: the full pass's and the
share the exact and approximate engines compute (from the boxes the engine really ran), and the
approximate maps' agreement with the exact ones (Spearman, SSIM) on the shipped photos.

Usage:
    python bench/incremental.py [--windows 169 729 3025] [--rounds 1] [--photos 4] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime

import torch
import torch.nn.functional as F
from captum.attr import Occlusion
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from timing import device_name, interleaved

import interpret
import zoo
from interpret.attribution.incremental import IncrementalForward
from interpret.attribution.incremental.choice import APPROXIMATE_SHARE

GEOMETRY = {169: (32, 16), 729: (16, 8), 3025: (8, 4), 49: (64, 32)}
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "horse")


def conv_work(handle: zoo.ModelHandle, image: torch.Tensor, window: int, stride: int,
              cap: float | None) -> list[tuple[str, int, float]]:
    """Per convolution: (name, full multiply-adds per row, share the engine computed), over all windows."""
    engine = IncrementalForward.build(handle, image, cap)
    params = dict(engine.graph.named_parameters())
    convs = [n for n in engine.graph.graph.nodes if n.op == "call_function" and n.target is F.conv2d]
    origins = torch.arange(0, image.shape[-1] - window + 1, stride)
    ys, xs = (grid.flatten() for grid in torch.meshgrid(origins, origins, indexing="ij"))
    computed = {n.name: 0.0 for n in convs}
    for start in range(0, ys.numel(), 64):
        top, left = ys[start:start + 64], xs[start:start + 64]
        engine.boxes.clear()
        engine(torch.zeros_like(top), top, left, torch.full((top.numel(), 3, window, window), 0.5))
        for node in convs:
            full = engine.clean[node.name].shape[-2] * engine.clean[node.name].shape[-1]
            box = engine.boxes.get(node.name)
            computed[node.name] += top.numel() * (box[2] * box[3] / full if box else 1.0)
    rows = ys.numel()
    return [(node.args[1].target.removesuffix(".weight"), params[node.args[1].target].numel() * engine.clean[node.name][0, 0].numel(),
             computed[node.name] / rows) for node in convs]


def agreement(handle: zoo.ModelHandle, names: tuple[str, ...], window: int, stride: int) -> list[tuple[float, float]]:
    """(Spearman, SSIM) of the approximate map against the exact one, per photo."""
    scores = []
    for name in names:
        image = handle.prepare([zoo.load_image(name)])
        exact = interpret.occlusion(handle, image, window=window, stride=stride, incremental="exact")[0, 0]
        approx = interpret.occlusion(handle, image, window=window, stride=stride, incremental="approximate")[0, 0]
        spread = float(exact.max() - exact.min()) or 1.0
        scores.append((float(spearmanr(exact.flatten(), approx.flatten()).statistic),
                       float(structural_similarity(exact.numpy(), approx.numpy(), data_range=spread))))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[169, 729, 3025], choices=sorted(GEOMETRY))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--photos", type=int, default=4, help="photos for the approximate mode's agreement")
    parser.add_argument("--per-eval", type=int, default=8, help="captum's perturbations_per_eval")
    parser.add_argument("--smoke", action="store_true", help="49 windows, one photo: checks the script runs")
    args = parser.parse_args()
    windows = [49] if args.smoke else args.windows
    handle = zoo.load("efficientnet_lite0", device="cpu")
    handle.compile_mode = "off"
    image = handle.prepare([zoo.load_image("chelsea")])
    target = int(handle(image).argmax())
    device = image.device
    print(f"# Incremental occlusion, efficientnet_lite0 224 px, 1 image; {device_name(device)}; "
          f"{datetime.date.today()}; approximate share {APPROXIMATE_SHARE}\n")
    for count in windows:
        window, stride = GEOMETRY[count]
        captum = Occlusion(handle)
        cases = {
            "today (full passes)": lambda: interpret.occlusion(handle, image, target, window=window, stride=stride,
                                                               incremental="off"),
            f"captum ppe={args.per_eval}": lambda: captum.attribute(
                image, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.5,
                target=target, perturbations_per_eval=args.per_eval),
            "incremental exact": lambda: interpret.occlusion(handle, image, target, window=window, stride=stride,
                                                             incremental="exact"),
            "incremental approximate": lambda: interpret.occlusion(handle, image, target, window=window,
                                                                   stride=stride, incremental="approximate"),
        }
        seconds = interleaved(cases, device, rounds=args.rounds)
        print(f"## {count} windows ({window} px, stride {stride})\n\n| case | seconds | x today | x captum |\n|---|---|---|---|")
        for name, took in seconds.items():
            print(f"| {name} | {took:.1f} | {seconds['today (full passes)'] / took:.2f} | "
                  f"{seconds[f'captum ppe={args.per_eval}'] / took:.2f} |")
        exact, approx = conv_work(handle, image, window, stride, None), conv_work(handle, image, window, stride,
                                                                                 APPROXIMATE_SHARE)
        total = sum(macs for _, macs, _ in exact)
        print(f"\nconv multiply-adds per row: full {total / 1e6:.0f} M; exact computes "
              f"{sum(m * s for _, m, s in exact) / total:.1%}, approximate {sum(m * s for _, m, s in approx) / total:.1%}\n")
        print("| conv | full M MACs | exact computes | approximate computes |\n|---|---|---|---|")
        for (name, macs, share), (_, _, approx_share) in zip(exact, approx):
            print(f"| {name} | {macs / 1e6:.1f} | {share:.0%} | {approx_share:.0%} |")
        scores = agreement(handle, PHOTOS[:1 if args.smoke else args.photos], window, stride)
        rho, ssim = zip(*scores)
        print(f"\napproximate vs exact over {len(scores)} photos: Spearman min {min(rho):.4f} mean "
              f"{sum(rho) / len(rho):.4f}; SSIM min {min(ssim):.4f} mean {sum(ssim) / len(ssim):.4f}\n")


if __name__ == "__main__":
    main()
