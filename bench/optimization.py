"""Feature visualization by optimization: quality and speed, in one run.

- actmax transfer: random ImageNet classes visualized on efficientnet_lite0 with
  each preset and seed; how many lite0 gives p >= 0.99, and how many
  efficientnet_lite1 and lite2 (models that never saw the optimization) put in
  their top 1 and top 5.
- actmax speed (``--speed``): optimization steps/s of the default preset against
  the model's own forward+backward rate for the same batch (the limit).
- feature inversion: normalized error and whether the class survives, per layer.
- DeepDream: seconds for a 1024 px photo, 4 octaves x 10 steps.

Usage:
    python bench/optimization.py [--device cuda] [--classes 24] [--steps 256] [--presets robust maco]
        [--seeds 0 1] [--class-seed 0] [--until 0.99] [--speed] [--skip-actmax] [--skip-inversion] [--skip-dream]
        [--dream-sizes 1024 2048]
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


JUDGES = ("efficientnet_lite1", "efficientnet_lite2")


def ranks(handle: zoo.ModelHandle, pictures: torch.Tensor, classes: list[int]) -> tuple[list[float], list[int]]:
    """Each picture's probability of its class on ``handle`` and the class's rank there (1 = top-1)."""
    with torch.no_grad():
        probs = handle(pictures.to(handle.device)).softmax(-1)
    index = torch.tensor(classes, device=probs.device)[:, None]
    mine = probs.gather(1, index)
    return mine[:, 0].tolist(), (probs > mine).sum(1).add(1).tolist()


def actmax_rows(handle: zoo.ModelHandle, judges: dict[str, zoo.ModelHandle], classes: list[int], steps: int,
                batch: int, preset: str, seed: int, until: float | None = None) -> tuple[list[dict], float]:
    """Class pictures of ``preset`` made on ``handle`` in batches, with each model's probability and rank."""
    rows, seconds = [], 0.0
    for start in range(0, len(classes), batch):
        chunk = classes[start:start + batch]
        pictures, took = timed(lambda: interpret.actmax(handle, target=chunk, steps=steps, preset=preset, seed=seed,
                                                        until=until, progress=False), handle.device)
        seconds += took
        scored = {"lite0": ranks(handle, pictures, chunk)}
        scored.update({name.rsplit("_", 1)[-1]: ranks(judge, pictures, chunk) for name, judge in judges.items()})
        for i, c in enumerate(chunk):
            row = {"class": c, "name": handle.class_name(c)}
            for model, (probability, rank) in scored.items():
                row[f"p_{model}"], row[f"rank_{model}"] = probability[i], rank[i]
            rows.append(row)
    return rows, seconds


def transfer_summary(rows: list[dict]) -> dict:
    """Counts of the quality measures over ``rows``."""
    return {"n": len(rows), "lite0_p99": sum(r["p_lite0"] >= 0.99 for r in rows),
            **{f"{m}_top{k}": sum(r[f"rank_{m}"] <= k for r in rows) for m in ("lite1", "lite2") for k in (1, 5)}}


def actmax_transfer(handle: zoo.ModelHandle, args: argparse.Namespace, batch: int) -> None:
    """Every preset x seed on the same random classes, side by side: lite0's confidence, lite1/lite2 top-1/top-5."""
    judges = {name: zoo.load(name, device=handle.device) for name in JUDGES}
    classes = torch.randperm(1000, generator=torch.Generator().manual_seed(args.class_seed))[:args.classes].tolist()
    stop = f"until lite0 p >= {args.until} (at most {args.steps} steps)" if args.until else f"{args.steps} steps"
    print(f"### Activation maximization transfer ({stop}, {len(classes)} classes drawn with "
          f"torch.randperm(1000, seed {args.class_seed}), batches of {batch})\n", flush=True)
    header = ("| preset | seed | lite0 p >= 0.99 | lite1 top-1 | lite1 top-5 | lite2 top-1 | lite2 top-5 | seconds |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|")
    print(header, flush=True)
    results, details = [], []
    for seed in args.seeds:  # seeds outside: a run cut short still has every preset on its first seed
        for preset in args.presets:
            rows, seconds = actmax_rows(handle, judges, classes, args.steps, batch, preset, seed, args.until)
            s = transfer_summary(rows)
            results.append((preset, seed, s, seconds))
            details.append((preset, seed, rows))
            n = s["n"]
            cells = [f"{s[k]}/{n} ({s[k] / n:.0%})" for k in ("lite0_p99", "lite1_top1", "lite1_top5", "lite2_top1",
                                                           "lite2_top5")]
            print(f"| {preset} | {seed} | {' | '.join(cells)} | {seconds:.0f} |", flush=True)
    print("\nSpread over seeds (min-max of the per-seed percentages):\n")
    print("| preset | lite0 p >= 0.99 | lite1 top-1 | lite1 top-5 | lite2 top-1 | lite2 top-5 | seconds/seed |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        mine = [(s, t) for p, _, s, t in results if p == preset]
        cells = []
        for k in ("lite0_p99", "lite1_top1", "lite1_top5", "lite2_top1", "lite2_top5"):
            values = [s[k] / s["n"] for s, _ in mine]
            cells.append(f"{min(values):.0%}-{max(values):.0%}" if len(values) > 1 else f"{values[0]:.0%}")
        print(f"| {preset} | {' | '.join(cells)} | {sum(t for _, t in mine) / len(mine):.0f} |")
    print("\n<details><summary>per class: lite0 p, lite1 rank, lite2 rank</summary>\n")
    print("| class | " + " | ".join(f"{p} s{seed}" for p, seed, _ in details) + " |")
    print("|---|" + "---|" * len(details))
    for i, c in enumerate(classes):
        cells = [f"{rows[i]['p_lite0']:.2f}, {rows[i]['rank_lite1']}, {rows[i]['rank_lite2']}" for _, _, rows in details]
        print(f"| {handle.class_name(c)} ({c}) | " + " | ".join(cells) + " |")
    print("\n</details>\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--steps", type=int, default=256, help="actmax steps (the method's default)")
    parser.add_argument("--batch", type=int, default=None, help="classes per batch (default: 64 on GPU, 8 on CPU)")
    parser.add_argument("--class-seed", type=int, default=0, help="seed of the random draw of classes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="optimization seeds")
    parser.add_argument("--presets", nargs="+", default=["robust"], help="actmax presets, side by side")
    parser.add_argument("--until", type=float, default=None,
                        help="actmax's until: stop each class at this lite0 probability (default: all steps)")
    parser.add_argument("--speed", action="store_true", help="also the default preset's speed against the limit")
    parser.add_argument("--skip-actmax", action="store_true")
    parser.add_argument("--skip-inversion", action="store_true")
    parser.add_argument("--skip-dream", action="store_true")
    parser.add_argument("--dream-sizes", type=int, nargs="+", default=[1024, 2048])
    args = parser.parse_args()

    handle = zoo.load("efficientnet_lite0", device=args.device)
    device = handle.device
    gpu = device.type == "cuda"
    batch = args.batch or (64 if gpu else 8)
    name = torch.cuda.get_device_name(device) if gpu else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"## Feature visualization: efficientnet_lite0, {name}, torch {torch.__version__}, "
          f"{datetime.date.today()}\n")

    if not args.skip_actmax:
        actmax_transfer(handle, args, batch)
    if args.speed:
        classes = list(range(batch))
        _, seconds = timed(lambda: interpret.actmax(handle, target=classes, steps=args.steps, progress=False), device)
        limit = forward_backward_rate(handle, batch)
        rate = batch * args.steps / seconds
        print(f"### Activation maximization speed (default preset, batch {batch}, {args.steps} steps)\n")
        print("| measure | value |\n|---|---:|")
        print(f"| image-steps/s | {rate:.2f} |\n| forward+backward limit (img/s) | {limit:.2f} |\n"
              f"| fraction of the limit | {rate / limit:.2f} |\n")

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
