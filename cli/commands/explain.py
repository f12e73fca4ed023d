"""``cnnviz explain`` (attribution maps as images) and ``cnnviz evaluate`` (their faithfulness)."""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

import interpret
from cli.method_options import add_method_options, method_kwargs
from cli.options import add_images, add_model, add_out, load_batch, load_handle, output_dir
from cli.registry import Run, command
from interpret import Method, class_index, methods
from interpret.faithfulness import deletion_insertion, random_maps, randomization_check
from interpret.render import COLORMAPS, DEFAULT_COLORMAP, attribution_map
from interpret.views import explanation_panel
from zoo import save_array, save_image
from zoo.handle import ModelHandle

FAMILY = "attribution"


def _method_list() -> str:
    return "\n".join(f"  {m.name:<22} {m.summary}" for m in methods(FAMILY))


def _add_common(parser: argparse.ArgumentParser) -> None:
    names = [m.name for m in methods(FAMILY)]
    parser.add_argument("methods", nargs="+", metavar="METHOD", choices=[*names, "all"],
                        help="one or more of: " + ", ".join(names) + ", or all")
    add_images(parser)
    add_model(parser)
    parser.add_argument("--target", "-t", metavar="CLASS",
                        help="class to explain, index or name (default: each image's predicted class)")
    parser.add_argument("--layer", "-l", metavar="NAME",
                        help="layer for Grad-CAM methods (default: the model's; list: cnnviz layers MODEL)")
    add_method_options(parser, methods(FAMILY))


def _chosen(args: argparse.Namespace) -> list[Method]:
    wanted = [m.name for m in methods(FAMILY)] if "all" in args.methods else args.methods
    return [interpret.get_method(name, FAMILY) for name in dict.fromkeys(wanted)]


def _setup(args: argparse.Namespace) -> tuple[ModelHandle, int | None, list[str], torch.Tensor]:
    """Check every argument before any heavy work, then load model and images."""
    handle = load_handle(args)
    target = class_index(handle, args.target) if args.target is not None else None
    if args.layer is not None:
        handle.layer(args.layer)
    names, batch = load_batch(args, handle)
    return handle, target, names, batch


def _call(method: Method, handle: ModelHandle, batch: torch.Tensor, target: int | None,
          args: argparse.Namespace) -> torch.Tensor:
    kwargs = method_kwargs(args, method)
    if method.uses_layer and args.layer is not None:
        kwargs["layer"] = args.layer
    return method.fn(handle, batch, target, **kwargs)


def _unique(names: list[str]) -> list[str]:
    """File stems, numbered where two images share a name."""
    counts, seen = Counter(names), Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(f"{name}-{seen[name]}" if counts[name] > 1 else name)
    return unique


@command("explain", "write attribution maps (Grad-CAM, occlusion, gradients, ...) over images", order=30,
         description="Explain a model's decision on images with attribution maps, written as PNG panels\n"
                     "(image | map | map over image | colour bar) with the prediction in the caption.\n\n"
                     "methods:\n" + _method_list() + "\n\n"
                     "examples:\n"
                     "  cnnviz explain gradcam --image chelsea\n"
                     "  cnnviz explain gradcam occlusion --image chelsea coffee --out maps/\n"
                     "  cnnviz explain all --image photos/ --target 'tiger cat' --npy\n"
                     "  cnnviz explain occlusion --image coffee --window 48 --stride 16 --fill blur")
def explain(parser: argparse.ArgumentParser) -> Run:
    _add_common(parser)
    add_out(parser)
    parser.add_argument("--npy", action="store_true", help="also write each raw map as .npy")
    parser.add_argument("--colormap", default=DEFAULT_COLORMAP, choices=sorted(COLORMAPS), metavar="NAME",
                        help=f"OpenCV colormap for the heatmaps (default: {DEFAULT_COLORMAP}, perceptually uniform)")

    def run(args: argparse.Namespace) -> None:
        chosen = _chosen(args)
        handle, target, names, batch = _setup(args)
        out = output_dir(args.out)
        with torch.no_grad():
            probs = handle(batch).softmax(-1)
        stems = _unique(names)
        for method in chosen:
            start = time.perf_counter()
            maps = _call(method, handle, batch, target, args)
            seconds = time.perf_counter() - start
            flat = attribution_map(maps)
            for i, stem in enumerate(stems):
                predicted = int(probs[i].argmax())
                explained = predicted if target is None else target
                title = (f"{method.name} | {handle.name} | {names[i]}: predicted {handle.class_name(predicted)} "
                         f"{probs[i, predicted]:.1%} | explaining {handle.class_name(explained)}")
                path = save_image(out / f"{stem}-{method.name}.png",
                                  explanation_panel(batch[i], flat[i], title, colormap=args.colormap))
                if args.npy:
                    save_array(out / f"{stem}-{method.name}.npy", maps[i])
                print(f"{path}  ({method.name}: {seconds:.2f} s for {len(stems)} image(s))")

    return run


@command("evaluate", "score attribution methods: deletion/insertion AUC and randomization check", order=31,
         description="Score attribution methods for faithfulness, next to a random-map baseline:\n"
                     "  deletion AUC   probability as the most salient pixels turn black (lower is better)\n"
                     "  insertion AUC  probability as they appear on a blurred canvas (higher is better)\n"
                     "  randomization  Spearman correlation of |map| with the map of the model whose top\n"
                     "                 blocks were re-initialized (low = the map depends on the weights;\n"
                     "                 guided backprop stays high: it fails this sanity check)\n\n"
                     "methods:\n" + _method_list() + "\n\n"
                     "example:\n  cnnviz evaluate gradcam gradient guided_backprop --image chelsea coffee")
def evaluate(parser: argparse.ArgumentParser) -> Run:
    _add_common(parser)
    parser.add_argument("--curve-steps", type=int, default=32, metavar="N",
                        help="points on the deletion/insertion curves (default: 32)")
    parser.add_argument("--randomize", type=int, default=None, metavar="N",
                        help="re-initialize the top N blocks, one at a time (default: all; 0 skips the check)")

    def run(args: argparse.Namespace) -> None:
        chosen = _chosen(args)
        handle, target, names, batch = _setup(args)
        rows = [("random", random_maps(batch), None)]
        rows += [(m.name, _call(m, handle, batch, target, args), m) for m in chosen]
        print(f"{handle.name} on {len(names)} image(s); means over images")
        print(f"{'method':<22} {'deletion AUC':>12} {'insertion AUC':>13} {'rand. corr (top block, all)':>28}")
        baseline = None
        for name, maps, method in rows:
            curves = deletion_insertion(handle, batch, maps, target, steps=args.curve_steps)
            deletion, insertion = curves.deletion_auc.mean().item(), curves.insertion_auc.mean().item()
            randomization = "-"
            if method is not None and args.randomize != 0:
                result = randomization_check(
                    handle, batch, lambda h, x, t, m=method: _call(m, h, x, t, args), target,
                    max_steps=args.randomize)
                first, last = result.correlations[0].mean().item(), result.correlations[-1].mean().item()
                randomization = f"{first:+.2f}, {last:+.2f} ({len(result.layers)})"
            verdict = ""
            if baseline is None:
                baseline = (deletion, insertion)
            else:
                verdict = "  beats random on: " + (", ".join(
                    k for k, ok in (("deletion", deletion < baseline[0]), ("insertion", insertion > baseline[1]))
                    if ok) or "neither")
            print(f"{name:<22} {deletion:>12.3f} {insertion:>13.3f} {randomization:>28}{verdict}")

    return run
