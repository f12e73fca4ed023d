"""``cnnviz style``: neural style transfer, with its loss curves and a JSON of final losses and timings."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure

from cnnviz import zoo
from cnnviz.cli.figures import add_chart_format
from cnnviz.cli.options import add_model, add_out, checked, load_handle, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret.optimize import StyleResult, fit_side, style_transfer
from cnnviz.interpret.views import charts, sheets, to_uint8
from cnnviz.zoo import save_image
from cnnviz.zoo.core import CnnvizError, ImageSide, NonNegativeFloat, PositiveFloat, PositiveInt, write_json
from cnnviz.zoo.handle import ModelHandle, match_channels

DEFAULT_MODEL = "efficientnet_lite0"


def loss_chart(result: StyleResult, title: str) -> Figure:
    """The weighted-total and per-term loss curves of image 0, octave ends marked."""
    marks, at = [], 0
    for h, w, steps in result.octaves[:-1]:
        at += steps
        marks.append((at + 0.5, f"{h}x{w} done"))
    return charts.loss_curves({name: values[:, 0].tolist() for name, values in result.history.items()},
                              title=title, marks=marks)


def _load_handle(args: argparse.Namespace) -> ModelHandle:
    try:
        return load_handle(args)
    except CnnvizError as exc:
        if args.model.startswith("vgg") and args.weights is None:
            raise CnnvizError(f"{exc} -- or run style transfer on the offline backbone: --model {DEFAULT_MODEL}") \
                from None
        raise


def _image(source: str, what: str) -> tuple[str, torch.Tensor]:
    try:
        named = zoo.load_images([source])
    except CnnvizError as exc:
        raise CnnvizError(f"--{what}: {exc}") from None
    if len(named) != 1:
        raise CnnvizError(f"--{what} must be one image, {source} holds {len(named)}")
    return named[0]


@command("style", "neural style transfer: a content image repainted in a style image's texture", order=42,
         description="Neural style transfer (Gatys et al.): optimize a picture whose deep features match the\n"
                     "content image and whose feature Gram matrices match the style image. On backbones\n"
                     "other than VGG the activations are softmax-smoothed first (Wang et al. 2021), which\n"
                     "makes the style visible; VGG-19 needs its torchvision weights on the machine.\n"
                     "Writes STEM.png (the result), STEM-panel.png (content | style | result),\n"
                     "STEM-losses.png (loss curves) and STEM.json (final losses, timings, settings).\n\n"
                     "examples:\n"
                     "  cnnviz style --content chelsea --style immunohistochemistry\n"
                     "  cnnviz style --content astronaut --style gravel --size 256 --optimizer adam --steps 500\n"
                     "  cnnviz style --content photo.jpg --style painting.jpg --size 1024 --preserve-colors\n"
                     "  cnnviz style --content chelsea --style brick --model vgg19 --no-smooth")
def style(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--content", "-c", required=True, metavar="IMG",
                        help="content image: file or scikit-image sample name (chelsea, astronaut, ...)")
    parser.add_argument("--style", "-s", required=True, metavar="IMG",
                        help="style image: file or sample name (immunohistochemistry, gravel, brick, ...)")
    add_model(parser)
    add_out(parser)
    parser.add_argument("--size", type=checked(ImageSide, "--size"), default=512, metavar="PX",
                        help="longer side of the result (default: 512; >= 1024 runs coarse-to-fine)")
    parser.add_argument("--steps", type=checked(PositiveInt, "--steps"), default=300, metavar="N", help="optimizer steps (default: 300)")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="(default: lbfgs)")
    parser.add_argument("--lr", type=checked(PositiveFloat, "--lr"), default=None, help="learning rate (default: 1 lbfgs, 0.02 adam)")
    parser.add_argument("--style-weight", type=checked(NonNegativeFloat, "--style-weight"), default=None, metavar="W",
                        help="weight of the style loss (default: the method's)")
    parser.add_argument("--content-weight", type=checked(NonNegativeFloat, "--content-weight"), default=None, metavar="W",
                        help="weight of the content loss (default: 1)")
    parser.add_argument("--tv-weight", type=checked(NonNegativeFloat, "--tv-weight"), default=None, metavar="W",
                        help="weight of the total variation (default: the method's)")
    parser.add_argument("--init", choices=("content", "noise"), default="content",
                        help="start from the content image or from noise (default: content)")
    parser.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=None,
                        help="softmax-smooth activations (default: on, except for VGG)")
    parser.add_argument("--temperature", type=checked(PositiveFloat, "--temperature"), default=None,
                        help="softmax temperature in units of each layer's std (default: the method's)")
    parser.add_argument("--style-layers", metavar="L1,L2", help="comma-separated layers (default: the backbone's)")
    parser.add_argument("--content-layer", metavar="L", help="content layer (default: the backbone's)")
    parser.add_argument("--style-scale", type=checked(PositiveFloat, "--style-scale"), default=None, metavar="S",
                        help="style image size relative to the result (default: 1; smaller: finer texture)")
    parser.add_argument("--coarse", type=checked(ImageSide, "--coarse"), default=None, metavar="PX",
                        help="longer side of the first coarse-to-fine octave (default: 512 when --size >= 1024)")
    parser.add_argument("--preserve-colors", action="store_true", help="keep the content's colours (luminance only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise start (default: 0)")
    parser.add_argument("--name", metavar="STEM", help="file stem (default: CONTENT-STYLE)")
    add_chart_format(parser)

    def run(args: argparse.Namespace) -> None:
        content_name, content = _image(args.content, "content")
        style_name, style_image = _image(args.style, "style")
        handle = _load_handle(args)
        out = output_dir(args.out)
        stem = args.name or f"{Path(content_name).stem}-{Path(style_name).stem}"
        out / f"{stem}.png"  # a --name holding a path is refused here, before minutes of work
        options = {k: getattr(args, k) for k in ("style_weight", "content_weight", "tv_weight", "temperature",
                                                 "style_scale", "lr") if getattr(args, k) is not None}
        content = match_channels(content.to(handle.device), handle.in_channels)[None]
        result = style_transfer(handle, content, style=style_image, size=args.size, steps=args.steps,
                                optimizer=args.optimizer, init=args.init, smooth=args.smooth,
                                style_layers=args.style_layers, content_layer=args.content_layer,
                                coarse=args.coarse, preserve_colors=args.preserve_colors, seed=args.seed,
                                **options)
        path = save_image(out / f"{stem}.png", to_uint8(result.images[0]))
        report = _write_panel_and_report(args, out, stem, handle, result, content, style_image,
                                         (content_name, style_name))
        print(f"{path}  ({result.seconds:.1f} s on {handle.device}; final losses: "
              + ", ".join(f"{k} {v:.4g}" for k, v in report["final_losses"].items()) + ")")

    return run


def _write_panel_and_report(args: argparse.Namespace, out: Path, stem: str, handle: ModelHandle,
                            result: StyleResult, content: torch.Tensor, style_image: torch.Tensor,
                            names: tuple[str, str]) -> dict:
    """STEM-panel.png (content | style | result), the loss chart and STEM.json; returns the report."""
    h, w = result.images.shape[-2:]
    shown_style = torch.nn.functional.interpolate(
        style_image[None], size=fit_side(*style_image.shape[-2:], max(h, w)), mode="bilinear",
        antialias=True, align_corners=False)[0].clamp(0, 1)
    shown_content = torch.nn.functional.interpolate(content, size=(h, w), mode="bilinear", antialias=True,
                                                    align_corners=False)[0].clamp(0, 1)
    smooth = "softmax-smoothed" if result.smoothing else "plain Gram"
    panel = sheets.style_panel(shown_content, shown_style, result.images[0],
                               [f"content: {names[0]}", f"style: {names[1]}",
                                f"{handle.name}, {smooth}, {args.optimizer} {args.steps} steps"])
    save_image(out / f"{stem}-panel.png", panel)
    charts.save(loss_chart(result, f"style transfer losses ({handle.name}, {args.optimizer})"),
                out / f"{stem}-losses", args.format)
    report = {
        "content": names[0], "style": names[1], "model": handle.name, "device": str(handle.device),
        "size": [h, w], "optimizer": args.optimizer, "steps": args.steps, "init": args.init,
        "smoothing": result.smoothing, "style_layers": result.style_layers,
        "content_layer": result.content_layer, "octaves": [list(o) for o in result.octaves],
        "seconds": round(result.seconds, 3), "lbfgs_restarts": result.restarts,
        "seconds_per_step": round(result.seconds / sum(o[2] for o in result.octaves), 4),
        "final_losses": {k: v[0] for k, v in result.final_losses().items()},
        "initial_losses": {k: float(v[0, 0]) for k, v in result.history.items()},
    }
    write_json(out / f"{stem}.json", report)
    return report
