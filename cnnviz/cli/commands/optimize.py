"""``cnnviz actmax``, ``cnnviz invert`` and ``cnnviz dream``: pictures made by optimizing the input."""

from __future__ import annotations

import argparse
import time

import torch

from cnnviz import zoo
from cnnviz.cli.method_options import add_method_options, method_kwargs
from cnnviz.cli.options import (
    add_images, add_model, add_out, checked, load_batch, load_handle, output_dir, unique_stems, write_json,
)
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import get_method
from cnnviz.interpret.core import class_index
from cnnviz.interpret.inside import layer_output
from cnnviz.interpret.optimize import DEPTH, class_scores, inversion_scores, parse_unit, resize
from cnnviz.interpret.views import picture_grid, to_uint8
from cnnviz.zoo import save_image
from cnnviz.zoo.core import LargeImageSide
from cnnviz.zoo.handle import ModelHandle, layer_at_depth, match_channels

FAMILY = "optimization"


def _side(images: torch.Tensor) -> int:
    """The side pictures are drawn at on a sheet: tiny inputs (28 px) enlarged without blur so captions fit."""
    return max(160, images.shape[-1])


def _options(parser: argparse.ArgumentParser, name: str, skip: tuple[str, ...] = ()) -> None:
    add_method_options(parser, [get_method(name, FAMILY)], skip=skip)


def _kwargs(args: argparse.Namespace, name: str) -> dict:
    return method_kwargs(args, get_method(name, FAMILY))


@command("actmax", "activation maximization: the picture a class or a unit likes most", order=50,
         description="Optimize pictures that maximize a class or a unit, all in one batch. Writes one PNG per\n"
                     "target, a contact sheet actmax.png, and actmax.json with each picture's probability on\n"
                     "the model (and on --score-with, to test whether the picture transfers).\n\n"
                     "presets: strong (Fourier image, decorrelated colour, crops/rotations/noise; the default),\n"
                     "maco (phase only, natural magnitude), robust (Fourier, milder jitter/scale/rotate),\n"
                     "jitter (raw pixels, transforms and blur), pixels (plain ascent: adversarial noise)\n\n"
                     "examples:\n"
                     "  cnnviz actmax --target goldfish espresso 'tiger cat'\n"
                     "  cnnviz actmax --unit blocks.10:0-15 --steps 128\n"
                     "  cnnviz actmax --target 1 --preset pixels --score-with efficientnet_lite2")
def actmax_command(parser: argparse.ArgumentParser) -> Run:
    wanted = parser.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--target", "-t", nargs="+", metavar="CLASS", help="class names or indices")
    wanted.add_argument("--unit", metavar="LAYER:CH", help="layer:channel, layer:A-B, layer:all or layer:ch:y:x")
    add_model(parser)
    add_out(parser)
    parser.add_argument("--score-with", metavar="MODEL", help="also score the pictures with this zoo model")
    _options(parser, "actmax", skip=("unit",))

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        judge = zoo.load(args.score_with, device=handle.device) if args.score_with else None
        out = output_dir(args.out)
        start = time.perf_counter()
        method = get_method("actmax", FAMILY)
        pictures = method.fn(handle, None, args.target, unit=args.unit, **_kwargs(args, "actmax"))
        seconds = time.perf_counter() - start
        labels, report = _actmax_report(handle, judge, pictures, args)
        report.update(seconds=round(seconds, 2), model=handle.name, unit=args.unit)
        for picture, stem in zip(pictures, unique_stems(labels)):
            save_image(out / f"actmax-{stem}.png", to_uint8(picture))
        save_image(out / "actmax.png", picture_grid(pictures, _captions(labels, report), side=_side(pictures)))
        print(f"{write_json(out / 'actmax.json', report)}  ({len(labels)} picture(s) in {seconds:.1f} s)")

    return run


def _actmax_report(handle: ModelHandle, judge: ModelHandle | None, pictures: torch.Tensor,
                   args: argparse.Namespace) -> tuple[list[str], dict]:
    """Labels and the measured scores of the pictures."""
    if args.unit:
        objective, _, labels = parse_unit(handle, args.unit)
        with torch.no_grad():
            activation = layer_output(handle, objective.layers[0], pictures)
        channels = [int(label.split(":")[1]) for label in labels]
        mean = activation[torch.arange(len(channels)), channels].flatten(1).mean(1)
        return labels, {"targets": labels, "channel_mean_activation": mean.tolist()}
    classes = [class_index(handle, t) for t in args.target]
    labels = [handle.class_name(c) for c in classes]
    report: dict = {"targets": labels, "classes": classes, **class_scores(handle, pictures, classes)}
    if judge is not None:
        report[f"on {judge.name}"] = class_scores(judge, pictures.to(judge.device), classes)
    return labels, report


def _captions(labels: list[str], report: dict) -> list[str]:
    if "probability" in report:
        return [f"{label} p={p:.3f}" for label, p in zip(labels, report["probability"])]
    return [f"{label} act={a:.2f}" for label, a in zip(labels, report["channel_mean_activation"])]


@command("invert", "feature inversion: the picture a layer's embedding remembers", order=51,
         description="Reconstruct images from their embedding at one or more layers (Mahendran & Vedaldi\n"
                     "2015). Writes per image a row (original | one reconstruction per layer, captioned with\n"
                     "the normalized error ||phi(x)-phi0||^2/||phi0||^2) and a JSON with, per layer, the error\n"
                     "and whether the model still predicts the original's class from the reconstruction.\n\n"
                     "examples:\n"
                     "  cnnviz invert --image coffee --layer stem blocks.3 blocks.8 blocks.13 head.bn\n"
                     "  cnnviz invert --image chelsea --layer blocks.8 --steps 600 --tv-weight 20")
def invert_command(parser: argparse.ArgumentParser) -> Run:
    add_images(parser)
    add_model(parser)
    add_out(parser)
    parser.add_argument("--layer", "-l", nargs="+", metavar="NAME",
                        help="layers to invert (default: the model's default layer; list: cnnviz layers MODEL)")
    _options(parser, "invert")

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        layers = args.layer or [handle.default_layer]
        for layer in layers:
            handle.layer(layer)  # check every name before the slow part
        names, batch = load_batch(args, handle)
        out = output_dir(args.out)
        method = get_method("invert", FAMILY)
        tiles: list[list[torch.Tensor]] = [[image] for image in batch]
        texts: list[list[str]] = [[name] for name in names]
        reports: list[dict] = [{"image": name, "model": handle.name, "layers": {}} for name in names]
        for layer in layers:
            start = time.perf_counter()
            rebuilt = method.fn(handle, batch, layer=layer, **_kwargs(args, "invert"))
            seconds = time.perf_counter() - start
            scores = inversion_scores(handle, batch, rebuilt, layer)
            for i in range(len(names)):
                kept = "class kept" if scores["class_kept"][i] else "class lost"
                tiles[i].append(rebuilt[i])
                texts[i].append(f"{layer} err={scores['error'][i]:.3f} {kept}")
                reports[i]["layers"][layer] = {key: values[i] for key, values in scores.items()}
                reports[i]["layers"][layer]["seconds"] = round(seconds / len(names), 2)
        for stem, row, text, report in zip(unique_stems(names), tiles, texts, reports):
            path = save_image(out / f"{stem}-invert.png", picture_grid(row, text, side=_side(batch), columns=len(row)))
            write_json(out / f"{stem}-invert.json", report)
            print(path)

    return run


@command("dream", "DeepDream: amplify what a layer sees in a photo", order=52,
         description="DeepDream on photos at their own size (or --size): normalized gradient ascent on a\n"
                     "layer's activations, with jitter and octaves (each 1.4x larger); images over 1024 px\n"
                     "are processed in tiles. Writes STEM-dream.png and STEM-dream.json (the layer's mean\n"
                     "squared activation before and after, seconds).\n\n"
                     "examples:\n"
                     "  cnnviz dream --image chelsea\n"
                     "  cnnviz dream --image astronaut --layer blocks.6 --channel 12 --size 1024\n"
                     "  cnnviz dream --image coffee --octaves 6 --steps 20")
def dream_command(parser: argparse.ArgumentParser) -> Run:
    add_images(parser)
    add_model(parser)
    add_out(parser)
    parser.add_argument("--layer", "-l", metavar="NAME",
                        help="layer to amplify (default: the block 60%% of the way up, blocks.10 on "
                             "efficientnet_lite0; list: cnnviz layers MODEL)")
    parser.add_argument("--size", type=checked(LargeImageSide, "--size"), metavar="PX", help="resize so the longer side is PX (default: as is)")
    _options(parser, "dream")

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        layer = args.layer or layer_at_depth(handle.model, DEPTH)
        handle.layer(layer)
        out = output_dir(args.out)
        method = get_method("dream", FAMILY)
        named = zoo.load_images(args.image)
        for (name, image), stem in zip(named, unique_stems([n for n, _ in named])):
            photo = match_channels(image, handle.in_channels)[None].to(handle.device)
            if args.size:
                height, width = photo.shape[-2:]
                ratio = args.size / max(height, width)
                photo = resize(photo, (max(1, round(height * ratio)), max(1, round(width * ratio))))
            start = time.perf_counter()
            dreamt = method.fn(handle, photo, layer=layer, **_kwargs(args, "dream"))
            seconds = time.perf_counter() - start
            before, after = (_dream_score(handle, layer, x) for x in (photo, dreamt))
            path = save_image(out / f"{stem}-dream.png", to_uint8(dreamt[0]))
            write_json(out / f"{stem}-dream.json", {
                "image": name, "model": handle.name, "layer": layer, "size": list(photo.shape[-2:]),
                "mean_squared_activation": {"before": before, "after": after}, "seconds": round(seconds, 2)})
            print(f"{path}  ({seconds:.1f} s; activation {before:.3g} -> {after:.3g})")

    return run


def _dream_score(handle: ModelHandle, layer: str, images: torch.Tensor) -> float:
    with torch.no_grad():
        return layer_output(handle, layer, images).pow(2).mean().item()
