"""Attribution speed, side by side with captum and with the model's own limit, in one run.

The limit of a method is what the model alone can do: occlusion cannot beat
``windows / best batched forward throughput``; gradient methods cannot beat
the best batched forward+backward throughput. Every number comes from this
run on this device; ratios are what to compare across machines.

Usage:
    python bench/attribution.py [--device cuda] [--images 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from collections.abc import Callable

import torch
from captum.attr import (GuidedBackprop, IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion,
                         Saliency)

import interpret
import zoo


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Fastest of ``repeats`` timed runs after one warm-up."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def throughput_limit(handle: zoo.ModelHandle, sizes: list[int], repeats: int, backward: bool) -> tuple[float, int]:
    """Best images/s of the bare model over batch sizes (forward, or forward + input gradient)."""
    best, best_size = 0.0, sizes[0]
    for size in sizes:
        x = torch.rand(size, 3, handle.input_size, handle.input_size, device=handle.device)

        def step() -> None:
            if backward:
                xg = x.clone().requires_grad_(True)
                torch.autograd.grad(handle(xg)[:, 0].sum(), xg)
            else:
                with torch.no_grad():
                    handle(x)

        rate = size / best_time(step, handle.device, repeats)
        if rate > best:
            best, best_size = rate, size
    return best, best_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=None, help="batch for gradient methods (default: best)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    handle = zoo.load("efficientnet_lite0", device=args.device)
    for p in handle.parameters():
        p.requires_grad_(False)  # captum and we both differentiate w.r.t. inputs only
    device = handle.device
    gpu = device.type == "cuda"
    sizes = [64, 128, 256, 512] if gpu else [8, 16, 32, 64]
    fwd_limit, fwd_batch = throughput_limit(handle, sizes, args.repeats, backward=False)
    bwd_limit, bwd_batch = throughput_limit(handle, sizes, args.repeats, backward=True)
    image = handle.prepare([zoo.load_image("chelsea")])
    target = 282
    rows: list[dict[str, object]] = []

    # Occlusion: one image, 32 px windows at stride 16 = 169 windows.
    window, stride = 32, 16
    windows = ((224 - window) // stride + 1) ** 2
    limit_s = windows / fwd_limit

    def add(name: str, seconds: float, limit: float, unit_count: float, unit: str) -> None:
        rows.append({"method": name, "seconds": seconds, f"{unit}/s": unit_count / seconds,
                     "of limit": limit / seconds})

    add("occlusion (cnnviz, auto batch)", best_time(lambda: interpret.occlusion(
        handle, image, target, window=window, stride=stride, score="logit"), device, args.repeats),
        limit_s, windows, "windows")
    captum_occlusion = Occlusion(handle)
    for per_eval in (1, fwd_batch):
        add(f"occlusion (captum, perturbations_per_eval={per_eval})", best_time(
            lambda pe=per_eval: captum_occlusion.attribute(image, sliding_window_shapes=(3, window, window),
                                                            strides=(3, stride, stride), baselines=0.5, target=target,
                                                            perturbations_per_eval=pe), device, args.repeats),
            limit_s, windows, "windows")

    # Gradient methods on a batch of images; IG and SmoothGrad count model passes.
    batch_size = args.images or bwd_batch
    batch = image.expand(batch_size, -1, -1, -1).contiguous()
    targets = [target] * batch_size
    steps, samples = 32, 50
    gradient_cases = [
        ("gradient", batch_size, lambda: interpret.saliency(handle, batch, targets),
         lambda: Saliency(handle).attribute(batch, target=targets)),
        ("guided backprop", batch_size, lambda: interpret.guided_backprop(handle, batch, targets),
         lambda: GuidedBackprop(handle).attribute(batch, target=targets)),
        ("grad-cam", batch_size, lambda: interpret.gradcam(handle, batch, targets),
         lambda: LayerGradCam(handle, handle.layer("head")).attribute(batch, target=targets)),
    ]
    small = batch[: max(1, batch_size // steps)] if gpu else batch[:1]
    gradient_cases += [
        (f"integrated gradients ({steps} steps)", small.shape[0] * steps,
         lambda: interpret.integrated_gradients(handle, small, target, steps=steps, batch_size=bwd_batch),
         lambda: IntegratedGradients(handle).attribute(small, target=target, n_steps=steps,
                                                       internal_batch_size=bwd_batch)),
        (f"smoothgrad ({samples} samples)", small.shape[0] * samples,
         lambda: interpret.smoothgrad(handle, small, target, samples=samples, batch_size=bwd_batch),
         lambda: NoiseTunnel(Saliency(handle)).attribute(small, target=target, nt_type="smoothgrad",
                                                          nt_samples=samples, nt_samples_batch_size=bwd_batch,
                                                          stdevs=0.15)),
    ]
    for name, passes, ours, theirs in gradient_cases:
        limit = passes / bwd_limit
        add(f"{name} (cnnviz)", best_time(ours, device, args.repeats), limit, passes, "passes")
        add(f"{name} (captum)", best_time(theirs, device, args.repeats), limit, passes, "passes")

    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({platform.processor() or platform.machine()}, " \
        f"{torch.get_num_threads()} threads)"
    print(f"## Attribution speed: efficientnet_lite0, 224 px, {name}, torch {torch.__version__}, "
          f"{datetime.date.today()}")
    print(f"forward limit {fwd_limit:.1f} images/s (batch {fwd_batch}); forward+backward limit "
          f"{bwd_limit:.1f} images/s (batch {bwd_batch})\n")
    print("| method | seconds | throughput | fraction of the limit |")
    print("|---|---:|---:|---:|")
    for row in rows:
        unit = next(k for k in row if k.endswith("/s"))
        print(f"| {row['method']} | {row['seconds']:.3f} | {row[unit]:.1f} {unit} | {row['of limit']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "forward_limit": fwd_limit, "backward_limit": bwd_limit, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
