"""Attribution speed, side by side with captum and with the model's own limit, in one run.

The limit of a method is what the model alone can do: occlusion cannot beat
``windows / best batched forward throughput``; gradient methods cannot beat
the best batched forward+backward throughput (Grad-CAM, which stops its
backward pass at its layer, is held to forward + backward down to that
layer). All cases run in interleaved rounds (``bench/timing.py``), so every
ratio compares numbers taken in the same stretch of time on this device.

With ``--family`` it measures the methods of issue 14 instead: the CAM family, RISE, extremal
perturbations and captum methods through the registry, each as a fraction of its limit (forward for
masked-input methods, forward+backward for gradient methods, forward above the layer for Ablation-CAM),
side by side with pytorch-grad-cam where it has the method.

Usage:
    python bench/attribution.py [--device cuda] [--images 8] [--rounds 5] [--json out.json]
    python bench/attribution.py --family [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Callable

import torch
from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from limits import best_limit, forward_case, limit_cases
from timing import best_of, device_name, interleaved

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.core.batching import auto_batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=None,
                        help="images per gradient-method call (default: cnnviz's automatic batch)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--family", action="store_true", help="the CAM family, RISE, extremal and captum methods")
    args = parser.parse_args()
    if args.family:
        family(args)
        return

    handle = zoo.load("efficientnet_lite0", device=args.device)
    for p in handle.parameters():
        p.requires_grad_(False)  # captum and we both differentiate w.r.t. inputs only
    device = handle.device
    gpu = device.type == "cuda"
    auto = auto_batch_size(handle)
    sizes = [32, 64, 128, 256, 512] if gpu else [4, 8, 16, 32]
    image = handle.prepare([zoo.load_image("chelsea")])
    target, layer = 282, "head"
    cases: dict[str, Callable[[], object]] = limit_cases(handle, image, sizes, layer)

    # Occlusion: one image, 32 px windows at stride 16 = 169 windows.
    window, stride = 32, 16
    windows = ((224 - window) // stride + 1) ** 2
    cases["occlusion (cnnviz, auto batch)"] = lambda: interpret.occlusion(
        handle, image, target, window=window, stride=stride, score="logit")
    captum_occlusion = Occlusion(handle)
    per_evals = (1, *sizes[1::2])
    for per_eval in per_evals:
        cases[f"occlusion (captum, perturbations_per_eval={per_eval})"] = (
            lambda pe=per_eval: captum_occlusion.attribute(
                image, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.5,
                target=target, perturbations_per_eval=pe))

    # Gradient methods on a batch of images; IG and SmoothGrad count model passes.
    batch_size = args.images or auto
    batch = image.expand(batch_size, -1, -1, -1).contiguous()
    targets = [target] * batch_size
    steps, samples = 32, 50
    small = batch[: max(1, batch_size // steps)]
    passes = {"gradient": batch_size, "guided backprop": batch_size, "grad-cam": batch_size,
              f"integrated gradients ({steps} steps)": small.shape[0] * steps,
              f"smoothgrad ({samples} samples)": small.shape[0] * samples}
    gradient_cases = {
        "gradient": (lambda: interpret.saliency(handle, batch, targets),
                     lambda: Saliency(handle).attribute(batch, target=targets)),
        "guided backprop": (lambda: interpret.guided_backprop(handle, batch, targets),
                            lambda: GuidedBackprop(handle).attribute(batch, target=targets)),
        "grad-cam": (lambda: interpret.gradcam(handle, batch, targets, layer=layer),
                     lambda: LayerGradCam(handle, handle.layer(layer)).attribute(batch, target=targets)),
        f"integrated gradients ({steps} steps)": (
            lambda: interpret.integrated_gradients(handle, small, target, steps=steps),
            lambda: IntegratedGradients(handle).attribute(small, target=target, n_steps=steps,
                                                          internal_batch_size=auto)),
        f"smoothgrad ({samples} samples)": (
            lambda: interpret.smoothgrad(handle, small, target, samples=samples),
            lambda: NoiseTunnel(Saliency(handle)).attribute(small, target=target, nt_type="smoothgrad",
                                                             nt_samples=samples, nt_samples_batch_size=auto,
                                                             stdevs=0.15)),
    }
    for name, (ours, theirs) in gradient_cases.items():
        cases[f"{name} (cnnviz)"] = ours
        cases[f"{name} (captum)"] = theirs

    seconds = interleaved(cases, device, args.rounds)

    fwd_limit, fwd_path, fwd_batch = best_limit(seconds, "forward")
    bwd_limit, bwd_path, bwd_batch = best_limit(seconds, "backward")
    layer_limit, layer_path, layer_batch = best_limit(seconds, f"backward to {layer}")
    rows = []
    for name, took in seconds.items():
        if name.startswith("limit"):
            continue
        if name.startswith("occlusion"):
            count, unit, limit = windows, "windows", fwd_limit
        else:
            method = name.rsplit(" (", 1)[0]
            count, unit = passes[method], "passes"
            limit = layer_limit if method == "grad-cam" else bwd_limit
        rows.append({"method": name, "seconds": took, "unit": unit, "rate": count / took,
                     "of limit": count / took / limit})

    print(f"## Attribution speed: efficientnet_lite0, 224 px, {device_name(device)}, torch {torch.__version__}, "
          f"{datetime.date.today()}")
    print(f"best of {args.rounds} interleaved rounds; cnnviz's automatic batch {auto}; limits: forward "
          f"{fwd_limit:.1f} images/s ({fwd_path}, batch {fwd_batch}), forward+backward {bwd_limit:.1f} images/s "
          f"({bwd_path}, batch {bwd_batch}), forward+backward to {layer} {layer_limit:.1f} images/s "
          f"({layer_path}, batch {layer_batch}); each the best over eager NCHW, channels-last, compiled, "
          "bf16 and compiled bf16 (bench/limits.py)\n")
    print("| method | seconds | throughput | fraction of the limit |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {row['seconds']:.3f} | {row['rate']:.1f} {row['unit']}/s | "
              f"{row['of limit']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name(device), "date": str(datetime.date.today()), "forward_limit": fwd_limit,
                       "backward_limit": bwd_limit, "backward_to_layer_limit": layer_limit, "rows": rows}, f,
                      indent=1)


def upper_forward(handle: zoo.ModelHandle, image: torch.Tensor, layer: str, copies: int) -> Callable[[], object]:
    """The network above ``layer`` on ``copies`` rows: one image below it, its output repeated above it."""
    with torch.no_grad(), interpret.record({layer: handle.layer(layer)}) as rec:
        handle(image)
    rows = rec[layer].output.expand(copies, -1, -1, -1).contiguous()

    def run() -> None:
        with torch.no_grad(), interpret.forward_hooks([(handle.layer(layer), lambda m, i, o: rows)]):
            handle(image)
    return run


def family(args: argparse.Namespace) -> None:
    """Issue 14's methods as fractions of their limits, and against pytorch-grad-cam, in one run."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    # Parameters keep requires_grad: pytorch-grad-cam's backward needs them (ours freeze them inside the guard).
    handle = zoo.load("efficientnet_lite0", device=args.device)
    device = handle.device
    image = handle.prepare([zoo.load_image("chelsea")])
    target, layer, masked_layer = 282, "head", "blocks.15"  # blocks.15: 320 channels, 7 x 7, right below head
    channels = 320
    auto = auto_batch_size(handle)
    sizes = [32, 64, 128, 256] if device.type == "cuda" else [4, 8, 16]
    batch = image.expand(auto, -1, -1, -1).contiguous()
    cases: dict[str, Callable[[], object]] = limit_cases(handle, image, sizes, layer)
    for copies in (64, 320, 1024):
        cases[f"limit above {masked_layer}|{copies}"] = upper_forward(handle, image, masked_layer, copies)
    gradient_cams = ["gradcam", "gradcam_plusplus", "xgradcam", "hirescam", "gradcam_elementwise", "layercam",
                     "shapleycam", "finercam", "eigengradcam"]
    activation_cams = ["eigencam", "kpcacam", "fem"]
    references = {"gradcam": pgc.GradCAM, "gradcam_plusplus": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM,
                  "hirescam": pgc.HiResCAM, "gradcam_elementwise": pgc.GradCAMElementWise,
                  "layercam": pgc.LayerCAM, "shapleycam": pgc.ShapleyCAM, "eigengradcam": pgc.EigenGradCAM,
                  "eigencam": pgc.EigenCAM, "kpcacam": pgc.KPCA_CAM, "fem": pgc.FEM}
    targets = [target] * auto
    for name in gradient_cams + activation_cams:
        cases[f"{name} (cnnviz)"] = lambda n=name: interpret.get_method(n).fn(handle, batch, targets, layer=layer)
        if name in references:
            cases[f"{name} (pytorch-grad-cam)"] = lambda n=name: references[n](handle, [handle.layer(layer)])(
                batch, [ClassifierOutputTarget(target)] * auto)
    cases["fullgrad (cnnviz)"] = lambda: interpret.fullgrad(handle, batch, targets)
    cases["captum:FeatureAblation 7x7 segments (cnnviz)"] = lambda: interpret.get_method(
        "captum:FeatureAblation").fn(handle, image, target, segments=7)
    cases["extremal 16 steps (cnnviz)"] = lambda: interpret.extremal(handle, image, target, steps=16)
    seconds = interleaved(cases, device, args.rounds)

    # The costly masked-input methods: one run each, ours and the reference's next to each other.
    rise_masks = 256
    heavy = {
        "rise 256 masks (cnnviz)": lambda: interpret.rise(handle, image, target, masks=rise_masks),
        "scorecam blocks.15 (cnnviz)": lambda: interpret.scorecam(handle, image, target, layer=masked_layer),
        "scorecam blocks.15 (pytorch-grad-cam)": lambda: pgc.ScoreCAM(handle, [handle.layer(masked_layer)])(
            image, [ClassifierOutputTarget(target)]),
        "ablationcam blocks.15 (cnnviz)": lambda: interpret.ablationcam(handle, image, target, layer=masked_layer),
        "ablationcam blocks.15 (pytorch-grad-cam)": lambda: pgc.AblationCAM(handle, [handle.layer(masked_layer)])(
            image, [ClassifierOutputTarget(target)]),
    }
    forward_case(handle, batch)()
    seconds.update(best_of(heavy, device, max(1, args.rounds // 2)))

    fwd, _, fwd_batch = best_limit(seconds, "forward")
    bwd, _, bwd_batch = best_limit(seconds, "backward")
    to_layer, _, layer_batch = best_limit(seconds, f"backward to {layer}")
    above, above_batch = max((copies / seconds[f"limit above {masked_layer}|{copies}"], copies)
                             for copies in (64, 320, 1024))
    work = {  # (passes, limit) per case
        "fullgrad": (auto, bwd), "extremal 16 steps": (16, bwd),
        "captum:FeatureAblation 7x7 segments": (1 + 49, fwd),
        "rise 256 masks": (rise_masks + 1, fwd), "scorecam blocks.15": (channels + 1, fwd),
        "ablationcam blocks.15": (channels, above),
        **{n: (auto, to_layer) for n in gradient_cams}, **{n: (auto, fwd) for n in activation_cams},
    }
    rows = []
    for name, took in seconds.items():
        if name.startswith("limit"):
            continue
        method, source = name.rsplit(" (", 1)
        passes, limit = work[method]
        ours = seconds.get(f"{method} (cnnviz)")
        rows.append({"method": name, "seconds": took, "rate": passes / took, "of limit": passes / took / limit,
                     "cnnviz speed-up": took / ours if source.startswith("pytorch") and ours else None})
    print(f"## Attribution speed, issue 14 methods: efficientnet_lite0, 224 px, {device_name(device)}, "
          f"torch {torch.__version__}, {datetime.date.today()}")
    print(f"{args.rounds} interleaved rounds (best of) for the light cases, best of {max(1, args.rounds // 2)} "
          f"alternating runs for Score-CAM, Ablation-CAM and RISE; batch {auto}; limits: forward {fwd:.1f} images/s (batch {fwd_batch}), "
          f"forward+backward {bwd:.1f} (batch {bwd_batch}), forward+backward to {layer} {to_layer:.1f} "
          f"(batch {layer_batch}), above {masked_layer} {above:.0f} rows/s (batch {above_batch})\n")
    print("| method | seconds | passes/s | fraction of the limit | cnnviz speed-up |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        speedup = f"{row['cnnviz speed-up']:.1f}x" if row["cnnviz speed-up"] else ""
        print(f"| {row['method']} | {row['seconds']:.3f} | {row['rate']:.1f} | {row['of limit']:.2f} | {speedup} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name(device), "date": str(datetime.date.today()), "limits": {
                "forward": fwd, "backward": bwd, "backward_to_layer": to_layer, "above_layer": above},
                "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
