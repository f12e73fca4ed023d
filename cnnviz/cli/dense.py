"""What ``cnnviz explain`` and ``cnnviz predict`` do for segmentation models and detectors.

``--region x0,y0,x1,y1`` explains a class over a box of the segmentation (or, for a detector, that box of
class ``--target``); ``--box N`` the N-th detection (from 1, best first, as ``cnnviz predict`` lists them).
Coordinates are pixels of the prepared image (after the model's resize and crop).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from cnnviz.cli.method_options import method_kwargs
from cnnviz.cli.options import checked, numbered
from cnnviz.cli.output import OutputFolder
from cnnviz.interpret import Method
from cnnviz.interpret.evaluate import explain_one, explains_region
from cnnviz.interpret.views import (
    boxes_overlay,
    caption,
    explained_overlay,
    explanation_panel,
    segmentation_overlay,
)
from cnnviz.zoo import save_array, save_image, unpack_detections
from cnnviz.zoo.core import PositiveInt
from cnnviz.zoo.core import write_json
from cnnviz.zoo.handle import ModelHandle


def add_dense_flags(parser: argparse.ArgumentParser) -> None:
    """``--region`` and ``--box`` for segmentation models and detectors."""
    group = parser.add_argument_group("segmentation models and detectors")
    group.add_argument("--region", type=parse_box, metavar="X0,Y0,X1,Y1",
                       help="explain --target over this box of a segmentation (default: where the model predicts "
                            "it), or a detector's box of class --target; pixels of the prepared image")
    group.add_argument("--box", type=checked(PositiveInt, "--box"), metavar="N",
                       help="explain a detector's N-th detection (from 1, best first; default 1)")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` as four numbers."""
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a region is four numbers x0,y0,x1,y1, got {text!r}") from None
    return x0, y0, x1, y1


def is_dense(handle: ModelHandle, args: argparse.Namespace) -> bool:
    """Whether the run explains a region or a box rather than a class."""
    return explains_region(handle, region=args.region, box=args.box)


def detections(handle: ModelHandle, image: torch.Tensor) -> torch.Tensor:
    """The detector's ``(N, 6)`` detections of one image (padding dropped)."""
    with torch.no_grad():
        return unpack_detections(handle(image[None]))[0]


def explain_dense(args: argparse.Namespace, chosen: Sequence[Method], handle: ModelHandle, target: int | None,
                  names: list[str], batch: torch.Tensor, out: OutputFolder) -> None:
    """``cnnviz explain`` on a segmentation model or a detector: one panel per image and method, with the
    explained region or box drawn beside the map, and a JSON record."""
    for name, stem, image in zip(names, numbered(names), batch):
        for method in chosen:
            found = explain_one(handle, method, image[None], target, names=[name], files=[f"{stem}-{method.name}"],
                                layer=args.layer, options=method_kwargs(args, method), region=args.region,
                                box=args.box, npy=args.npy)
            record = found.records[0]
            marked = explained_overlay(image, found.targets[0], found.detections[0], handle.class_name)
            path = save_image(out / record["png"], explanation_panel(image, found.flat[0], found.titles[0],
                                                                     colormap=args.colormap, marked=marked))
            if args.npy:
                save_array(out / record["npy"], found.maps[0])
            write_json(path.with_suffix(".json"), record)
            print(f"{path}  ({method.name}: {record['explained']})")


def predict_dense(handle: ModelHandle, names: list[str], batch: torch.Tensor, out: OutputFolder, top: int) -> None:
    """``cnnviz predict`` on a segmentation model (classes by share of pixels, the mask drawn) or a detector
    (detections listed and drawn, numbered as ``--box`` takes them)."""
    for name, stem, image in zip(names, numbered(names), batch):
        print(f"{name} ({handle.name})")
        if handle.config.task == "detection":
            found = detections(handle, image)
            for k, row in enumerate(found[:top].tolist(), 1):
                print(f"  {k}. {handle.class_name(int(row[5])):<20} {100 * row[4]:6.2f}%  "
                      f"box {', '.join(f'{v:.0f}' for v in row[:4])}")
            texts = [f"{k} {handle.class_name(int(r[5]))} {r[4]:.2f}" for k, r in enumerate(found[:top].tolist(), 1)]
            drawn = boxes_overlay(image, found[:top, :4], texts, labels=[int(v) for v in found[:top, 5]])
            kind = "detections"
        else:
            with torch.no_grad():
                labels = handle(image[None])[0].argmax(0)
            counts = torch.bincount(labels.flatten(), minlength=1).cpu()
            for index in counts.argsort(descending=True)[:top].tolist():
                if counts[index]:
                    print(f"  {handle.class_name(index):<20} {100 * counts[index] / labels.numel():6.2f}% of pixels")
            drawn, kind = segmentation_overlay(image, labels), "segmentation"
        path = save_image(out / f"{stem}-{kind}.png", caption(drawn, f"{handle.name} | {name}: {kind}"))
        print(f"  wrote {path}")
