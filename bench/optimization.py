"""Feature visualization by optimization: quality and speed, in one run.

- actmax quality: random ImageNet classes visualized on efficientnet_lite0;
  the probability lite0 gives each picture, and whether efficientnet_lite2
  (a model that never saw the optimization) puts the class in its top 5.
- actmax speed: optimization steps/s against the model's own forward+backward
  rate for the same batch (the limit).
- feature inversion: normalized error and whether the class survives, per layer.
- DeepDream: seconds for a 1024 px photo, 4 octaves x 10 steps.

Usage:
    python bench/optimization.py [--device cuda] [--classes 100] [--steps 256] [--skip-actmax]
        [--skip-inversion] [--skip-dream] [--dream-sizes 1024 2048]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch
import torch.nn.functional as F
from timing import sync

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.optimize.actmax import class_scores


def timed(fn, device: torch.device) -> tuple[object, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def forward_backward_rate(handle: zoo.ModelHandle, batch: int, repeats: int = 3) -> float:
    """Best images/s of the bare model's forward + input gradient at this batch size."""
    x = torch.rand(batch, 3, handle.input_size, handle.input_size, device=handle.device)

    def step() -> None:
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(handle(xg)[:, 0].sum(), xg)

    step()
    return batch / min(timed(step, handle.device)[1] for _ in range(repeats))


def actmax_rows(handle: zoo.ModelHandle, judge: zoo.ModelHandle, classes: list[int], steps: int,
                batch: int) -> tuple[list[dict], float]:
    rows, seconds = [], 0.0
    for start in range(0, len(classes), batch):
        chunk = classes[start:start + batch]
        pictures, took = timed(lambda: interpret.actmax(handle, target=chunk, steps=steps, progress=False),
                               handle.device)
        seconds += took
        mine, theirs = class_scores(handle, pictures, chunk), class_scores(judge, pictures, chunk)
        for i, c in enumerate(chunk):
            rows.append({"class": c, "name": handle.class_name(c), "p": mine["probability"][i],
                         "top5": mine["in_top5"][i], "p_lite2": theirs["probability"][i],
                         "top5_lite2": theirs["in_top5"][i]})
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=256, help="actmax steps (the method's default)")
    parser.add_argument("--batch", type=int, default=None, help="classes per batch (default: 64 on GPU, 8 on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-actmax", action="store_true")
    parser.add_argument("--skip-inversion", action="store_true")
    parser.add_argument("--skip-dream", action="store_true")
    parser.add_argument("--dream-sizes", type=int, nargs="+", default=[1024, 2048])
    args = parser.parse_args()

    handle = zoo.load("efficientnet_lite0", device=args.device)
    judge = zoo.load("efficientnet_lite2", device=handle.device)
    device = handle.device
    gpu = device.type == "cuda"
    batch = args.batch or (64 if gpu else 8)
    name = torch.cuda.get_device_name(device) if gpu else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"## Feature visualization: efficientnet_lite0, {name}, torch {torch.__version__}, "
          f"{datetime.date.today()}\n")

    if not args.skip_actmax:
        classes = torch.randperm(1000, generator=torch.Generator().manual_seed(args.seed))[:args.classes].tolist()
        rows, seconds = actmax_rows(handle, judge, classes, args.steps, batch)
        confident = [r["p"] >= 0.99 for r in rows]
        transfer = [r["top5_lite2"] for r in rows]
        both = [a and b for a, b in zip(confident, transfer)]
        n = len(rows)
        limit = forward_backward_rate(handle, min(batch, n))
        rate = n * args.steps / seconds
        print(f"### Activation maximization (preset robust, {args.steps} steps, {n} random classes, seed {args.seed})\n")
        print("| measure | value |\n|---|---:|")
        print(f"| lite0 probability >= 0.99 | {sum(confident)}/{n} ({sum(confident) / n:.0%}) |")
        print(f"| median lite0 probability | {sorted(r['p'] for r in rows)[n // 2]:.3f} |")
        print(f"| in lite2's top 5 (transfer) | {sum(transfer)}/{n} ({sum(transfer) / n:.0%}) |")
        print(f"| both at once | {sum(both)}/{n} ({sum(both) / n:.0%}) |")
        print(f"| seconds | {seconds:.1f} |")
        print(f"| image-steps/s | {rate:.2f} |")
        print(f"| forward+backward limit, batch {min(batch, n)} (img/s) | {limit:.2f} |")
        print(f"| fraction of the limit | {rate / limit:.2f} |\n")
        print("<details><summary>per class</summary>\n\n| class | p lite0 | p lite2 | lite2 top 5 |\n|---|---:|---:|---|")
        for r in rows:
            print(f"| {r['name']} ({r['class']}) | {r['p']:.3f} | {r['p_lite2']:.3f} | {'yes' if r['top5_lite2'] else 'no'} |")
        print("\n</details>\n")

    if not args.skip_inversion:
        photos = handle.prepare([zoo.load_image(s) for s in ("chelsea", "coffee", "astronaut")])
        print("### Feature inversion (chelsea, coffee, astronaut; default presets, 300 steps)\n")
        print("| layer | normalized error (each photo) | class kept | seconds |\n|---|---|---|---:|")
        for layer in ("stem", "blocks.3", "blocks.8", "blocks.13", "head.bn", "head"):
            rebuilt, took = timed(lambda: interpret.invert(handle, photos, layer=layer, progress=False), device)
            s = interpret.inversion_scores(handle, photos, rebuilt, layer)
            print(f"| {layer} | {', '.join(f'{e:.3f}' for e in s['error'])} | "
                  f"{sum(s['class_kept'])}/{len(s['class_kept'])} | {took:.1f} |")
        print()

    if not args.skip_dream:
        photo = zoo.load_image("astronaut")[None].to(device)  # 512 x 512
        print("### DeepDream (astronaut, layer blocks.10, 4 octaves x 10 steps)\n")
        print("| size | tiles | seconds |\n|---|---|---:|")
        for side in args.dream_sizes:
            big = F.interpolate(photo, size=(side, side), mode="bilinear", align_corners=False)
            _, took = timed(lambda: interpret.deepdream(handle, big, layer="blocks.10", progress=False), device)
            print(f"| {side} px | {'512 px' if side > 1024 else 'none'} | {took:.1f} |")


if __name__ == "__main__":
    main()
