"""``cnnviz filters``, ``cnnviz featuremaps``, ``cnnviz receptive-fields`` and ``cnnviz atlas``:
what conv layers hold, what they output, what they see, and which data excites them.

The pictures are drawn by :mod:`interpret.views.sheets`; the computing is in ``interpret``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from torch.utils.data import Dataset

from cnnviz.cli.options import (
    add_images,
    add_model,
    add_out,
    checked,
    chosen_layer,
    load_batch,
    load_handle,
    output_dir,
)
from cnnviz.cli.pictures import add_pictures, channel_pictures, given_labels, given_sheet
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import class_index
from cnnviz.interpret.attribution import BACKENDS, COMPOSITES, relevance_ranking
from cnnviz.interpret.core import session
from cnnviz.interpret.inside import (
    Atlas, Dissection, FILTER_MODES, LayerSheet, channel_examples, channel_order, conv_weight, feature_maps,
    filter_mode, filters, neuron_atlas, receptive_fields, verify_receptive_field,
)
from cnnviz.interpret.views import DEFAULT_COLORMAP, atlas_overview, channel_sheet, feature_map_grid, filter_grid
from cnnviz.zoo import safe_name, save_image
from cnnviz.zoo.core import ImageSide, NonNegativeInt, PositiveInt
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.core import write_json
from cnnviz.zoo.data import image_name, open_dataset
from cnnviz.zoo.handle import ModelHandle

# ---------------------------------------------------------------- filters

@command("filters", "draw the filters of a conv layer (first layer in colour)", order=40,
         description="Draw the filters of a conv layer as a grid, each filter normalized on its own and\n"
                     "enlarged without blur. The first layer reads pixels, so its filters are colour images;\n"
                     "a deeper layer's filters are drawn per input channel (one row per filter) or as their\n"
                     "mean over input channels.\n\n"
                     "examples:\n"
                     "  cnnviz filters                                   first layer of efficientnet_lite0\n"
                     "  cnnviz filters --model fashion_cnn --layer features.block2.conv --mode channels")
def filters_command(parser: argparse.ArgumentParser) -> Run:
    add_model(parser)
    parser.add_argument("--layer", "-l", metavar="NAME", help="conv layer (default: the first; list: cnnviz layers)")
    parser.add_argument("--mode", choices=FILTER_MODES, default="auto",
                        help="rgb, channels (one tile per input channel), mean, or auto (rgb for the first "
                             "layer, else mean)")
    parser.add_argument("--max-filters", type=checked(PositiveInt, "--max-filters"), default=256, metavar="N", help="draw at most N filters")
    parser.add_argument("--max-inputs", type=checked(PositiveInt, "--max-inputs"), default=32, metavar="N",
                        help="with --mode channels, at most N input channels per filter")
    add_out(parser)

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        out = output_dir(args.out)
        name, weight = conv_weight(handle, args.layer)
        mode = filter_mode(handle, weight, args.mode)
        tiles = filters(handle, name, mode=mode)[: args.max_filters].cpu()
        title = f"{handle.name} {name}: {weight.shape[0]} filters {weight.shape[-2]}x{weight.shape[-1]} ({mode})"
        image = filter_grid(tiles, mode=mode, inputs=args.max_inputs, title=title)
        path = save_image(out / f"{safe_name(handle.name)}-{safe_name(name)}-filters.png", image)
        print(path)

    return run


# ---------------------------------------------------------------- feature maps

@command("featuremaps", "draw every channel of a layer for an image, strongest first", order=41,
         description="Draw the activation maps of a layer for each image as a grid, one tile per channel,\n"
                     "sorted by mean activation (strongest first) unless --sort none, each tile captioned\n"
                     "with its channel and mean; --overlay draws the maps over the image.\n\n"
                     "examples:\n"
                     "  cnnviz featuremaps --image chelsea --layer blocks.2\n"
                     "  cnnviz featuremaps --image coffee --layer blocks.5 --overlay --max-channels 16")
def featuremaps_command(parser: argparse.ArgumentParser) -> Run:
    add_images(parser)
    add_model(parser)
    parser.add_argument("--layer", "-l", metavar="NAME",
                        help="layer (default: the model's default layer; list: cnnviz layers)")
    parser.add_argument("--sort", choices=["mean", "max", "none"], default="mean",
                        help="order of the channels (default: mean activation, strongest first)")
    parser.add_argument("--overlay", action="store_true", help="draw each map over the image")
    parser.add_argument("--max-channels", type=checked(PositiveInt, "--max-channels"), default=64, metavar="N", help="draw at most N channels")
    parser.add_argument("--colormap", default=DEFAULT_COLORMAP, metavar="NAME",
                        help=f"OpenCV colormap (default: {DEFAULT_COLORMAP})")
    add_out(parser)

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        layer = chosen_layer(args, handle)
        names, batch = load_batch(args, handle)
        out = output_dir(args.out)
        maps = feature_maps(handle, batch, layer=layer).cpu()
        order = channel_order(maps, args.sort)[:, : args.max_channels]
        for b, name in enumerate(names):
            channels = order[b].tolist()
            title = (f"{handle.name} {layer} on {name}: {len(channels)} of {maps.shape[1]} channels, "
                     f"{maps.shape[2]}x{maps.shape[3]}, by {args.sort}")
            image = feature_map_grid(maps[b], channels, image=batch[b].cpu() if args.overlay else None,
                                     colormap=args.colormap, title=title)
            path = save_image(out / f"{safe_name(name)}-{safe_name(layer)}-maps.png", image)
            print(path)

    return run


# ---------------------------------------------------------------- receptive fields

@command("receptive-fields", "list the receptive field size, stride and offset of each conv/pool layer", order=42,
         description="Print, for each conv and pool layer in forward order, the receptive field of its units\n"
                     "at the model's input size: size (input pixels one unit sees), jump (input pixels\n"
                     "between neighbouring units) and offset (centre of unit (0, 0); negative: in the\n"
                     "padding). --verify checks each by gradient probing.\n\n"
                     "example:\n  cnnviz receptive-fields --model resnet18 --verify")
def receptive_fields_command(parser: argparse.ArgumentParser) -> Run:
    add_model(parser)
    parser.add_argument("--size", type=checked(ImageSide, "--size"), default=None, metavar="PX", help="input side (default: the model's)")
    parser.add_argument("--all", action="store_true", help="every module, not only conv and pool layers")
    parser.add_argument("--verify", action="store_true",
                        help="check each box by gradient probing (zero gradient outside, non-zero inside)")

    def run(args: argparse.Namespace) -> int:
        handle = load_handle(args, weights=None)  # geometry needs no weights
        rows = receptive_fields(handle, input_size=args.size, every_module=args.all)
        width = max(len(r.name) for r in rows)
        print(f"{'layer':<{width}}  {'type':<18} {'map':>9} {'size':>9} {'jump':>5} {'offset':>8}"
              + ("  gradient check" if args.verify else ""))
        failures = 0
        for r in rows:
            if r.field is None:
                print(f"{r.name:<{width}}  {r.type:<18} {'-':>9}  unknown: {r.reason}")
                continue
            f = r.field
            check = ""
            if args.verify and "(call" not in r.name:
                ok = all(p.ok for p in verify_receptive_field(handle, r.name, input_size=args.size))
                failures += not ok
                check = "  ok" if ok else "  MISMATCH"
            size = f"{f.size[0]}" if f.size[0] == f.size[1] else f"{f.size[0]}x{f.size[1]}"
            print(f"{r.name:<{width}}  {r.type:<18} {f.output_size[0]:>4}x{f.output_size[1]:<4} {size:>9} "
                  f"{f.jump[0]:>5} {f.offset[0]:>8.1f}{check}")
        return 1 if failures else 0

    return run


# ---------------------------------------------------------------- atlas

def parse_channels(text: str | None, total: int | None) -> list[int]:
    """``"0-7,12"`` as a list of channels (all when None); ``total=None`` checks the syntax only.

    Example:
        >>> parse_channels("0-2,7", 8)
        [0, 1, 2, 7]
    """
    if text is None:
        return list(range(total or 0))
    chosen: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise CnnvizError(f"--channels takes numbers and ranges like 0-7,12, got {part!r}")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise CnnvizError(f"--channels range {part.strip()} runs backwards: write it low-high")
        if total is not None and high >= total:
            raise CnnvizError(f"channels {part.strip()} are outside the layer's 0-{total - 1}")
        chosen.extend(range(low, high + 1))
    return list(dict.fromkeys(chosen))


def write_atlas(handle: ModelHandle, atlas: Atlas, data: str, out: Path, channels: list[int],
                dictionary: LayerSheet | None = None, labels: Dissection | None = None) -> Path:
    """Per-channel sheets (with what each channel looks for, from ``dictionary``, and its dissection label, from
    ``labels``), an overview of every channel's
    best patch, and ``index.json``."""
    dataset = open_dataset(data)
    sheets = out / "channels"
    drawn = []
    for ex in channel_examples(handle, atlas, dataset, channels):
        names = [image_name(dataset, int(i)) for i in atlas.top_indices[ex.channel]]
        save_image(sheets / f"channel-{ex.channel:04d}.png", channel_sheet(ex, atlas, names, dictionary, labels))
        drawn.append(ex)
    overview = atlas_overview(drawn, atlas, f"{handle.name} {atlas.layer}: best patch of each channel over "
                                            f"{atlas.count} images")
    save_image(out / "atlas.png", overview)
    return write_index(handle, atlas, dataset, out)


def write_index(handle: ModelHandle, atlas: Atlas, dataset: Dataset, out: Path) -> Path:
    """``OUT/index.json``: per channel the top and bottom images, activations and boxes; dead channels."""
    index = atlas.to_dict(lambda i: image_name(dataset, i))
    index.update(model=handle.name, data=getattr(dataset, "description", type(dataset).__name__))
    return write_json(out / "index.json", index)


@command("atlas", "find the images and patches of a dataset that excite each channel of a layer", order=43,
         description="For every channel of a layer, over a dataset: the top-k and bottom-k images (by the\n"
                     "channel's maximum over its map) and the top-k patches cropped to the receptive field\n"
                     "of the maximal unit, with their activations; dead channels (never positive) listed.\n"
                     "--by relevance ranks instead by relevance maximization (CRP): the channel's share of the\n"
                     "relevance for the predicted class (or --target), the patch at its most relevant unit.\n"
                     "Writes OUT/channels/channel-NNNN.png, OUT/atlas.png (best patch per channel) and\n"
                     "OUT/index.json. Each channel's page starts with what the channel looks for (a feature\n"
                     "visualization of the channels drawn, up to 64, made after the scan; or from --sheet).\n"
                     "Runs unchanged under torchrun (one shard per process, NCCL or gloo).\n\n"
                     "examples:\n"
                     "  cnnviz atlas --model efficientnet_lite0 --layer blocks.5 --data photos/ --top 9\n"
                     "  cnnviz atlas --model fashion_cnn --layer features.block2.act --data fashion-mnist\n"
                     "  cnnviz atlas --model fashion_cnn --layer features.block2 --data fashion-mnist --by relevance\n"
                     "  torchrun --nproc-per-node 4 -m cnnviz.cli.main atlas --layer head --data imagenet-val/")
def atlas_command(parser: argparse.ArgumentParser) -> Run:
    add_model(parser)
    parser.add_argument("--layer", "-l", required=True, metavar="NAME", help="layer (list: cnnviz layers MODEL)")
    parser.add_argument("--data", "-d", required=True, metavar="PATH",
                        help="folder of images (searched recursively), or fashion-mnist / mnist "
                             "(add :train for the training split)")
    parser.add_argument("--top", "-k", type=checked(PositiveInt, "--top"), default=9, metavar="K", help="images per channel (default: 9)")
    parser.add_argument("--bottom", type=checked(NonNegativeInt, "--bottom"), default=None, metavar="K",
                        help="weakest images per channel (default: as --top; 0 for none)")
    parser.add_argument("--channels", metavar="LIST", help="draw only these channels, e.g. 0-15,40 (default: all)")
    parser.add_argument("--batch-size", type=checked(PositiveInt, "--batch-size"), default=None, metavar="N", help="images per batch (default: auto)")
    parser.add_argument("--workers", type=checked(NonNegativeInt, "--workers"), default=None, metavar="N",
                        help="data loading processes (default: 0 for data in memory, else up to 4)")
    parser.add_argument("--no-images", action="store_true", help="write index.json only")
    parser.add_argument("--by", choices=["activation", "relevance"], default="activation",
                        help="rank by the channel's activation (default) or by its relevance share for the class "
                             "(relevance maximization)")
    parser.add_argument("--target", "-t", metavar="CLASS",
                        help="--by relevance: the class whose relevance counts (default: each image's predicted)")
    parser.add_argument("--backend", choices=BACKENDS, default="lrp",
                        help="--by relevance: lrp (CRP, default) or gradient (gradient x activation, for models "
                             "LRP cannot canonize)")
    parser.add_argument("--composite", choices=COMPOSITES, default="epsilon_plus_flat",
                        help="--by relevance, backend lrp: the LRP rules (default: epsilon_plus_flat)")
    add_pictures(parser, "the atlas")
    add_out(parser, "cnnviz-atlas")

    def run(args: argparse.Namespace) -> None:
        if args.top < 1:
            raise CnnvizError(f"--top must be at least 1, got {args.top}")
        parse_channels(args.channels, None)  # a typo should fail before the pass, not after
        with session(args.device) as (group, device):
            args.device = str(device)
            handle = load_handle(args)
            # refused before the pass when made from other weights or for another layer
            dictionary, labels = given_sheet(args, handle, args.layer), given_labels(args, handle, args.layer)
            score = None
            if args.by == "relevance":
                target = class_index(handle, args.target) if args.target is not None else None
                score = relevance_ranking(handle, args.layer, target, backend=args.backend, composite=args.composite)
            atlas = neuron_atlas(handle, args.layer, args.data, top=args.top, bottom=args.bottom,
                                 batch_size=args.batch_size, workers=args.workers, score=score, ranked_by=args.by)
            if not group.leader:
                return
            out = output_dir(args.out)
            channels = parse_channels(args.channels, atlas.channels)
            if args.no_images:
                path = write_index(handle, atlas, open_dataset(args.data), out)
            else:
                if dictionary is None:
                    dictionary = channel_pictures(args, handle, atlas.layer, channels,
                                                  instead="give --channels (at most that many) or --sheet (cnnviz "
                                                          "microscope --layer LAYER)")
                path = write_atlas(handle, atlas, args.data, out, channels, dictionary, labels)
            shards = f" in {group.world} processes" if group.world > 1 else ""
            print(f"{path}  ({atlas.channels} channels, {atlas.count} images{shards}, by {atlas.ranked_by}; "
                  f"{len(atlas.dead)} dead: {atlas.dead[:20]}{' ...' if len(atlas.dead) > 20 else ''})")

    return run

