"""``cnnviz microscope``: a layer's sheet (OpenAI Microscope's page of a layer, for any model): every channel's
feature visualization, its top patches of ``--data`` and its statistics. The computing is
:func:`interpret.layer_sheet`; the pictures are drawn by :mod:`interpret.views.microscope`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cnnviz import zoo
from cnnviz.cli.options import add_model, add_out, checked, load_handle, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret.inside import SHEET_STEPS as STEPS
from cnnviz.interpret.inside import Dissection, LayerSheet, channel_examples
from cnnviz.interpret.optimize import default_preset
from cnnviz.interpret.views import sheet_overview, unit_card
from cnnviz.zoo import save_image
from cnnviz.zoo.core import PositiveInt, write_json
from cnnviz.zoo.data import image_name, open_dataset
from cnnviz.zoo.handle import ModelHandle, layer_name


@command("microscope", "a layer's sheet: every channel's feature visualization, top patches and statistics",
         order=44,
         description="For every channel of a layer: a feature visualization (all channels in one batched\n"
                     "optimization, --diversity pictures each, pushed apart), and with --data its top-k patches\n"
                     "(the receptive field of its maximal unit, one scan of the data for the whole layer) and its\n"
                     "statistics (mean, fraction of zeros, dead or alive).\n"
                     "Writes OUT/sheet.png (every channel's picture), OUT/units/unit-NNNN.png (one card per\n"
                     "channel), OUT/sheet.json (statistics and top items) and OUT/sheet.npz (the sheet, for\n"
                     "cnnviz gallery --units --sheet). With --cache DIR the sheet is kept there under the\n"
                     "weights' and the data's identity (cnnviz serve --cache DIR shows it in its pages).\n\n"
                     "examples:\n"
                     "  cnnviz microscope --model fashion_cnn --layer features.block3 --data fashion-mnist\n"
                     "  cnnviz microscope --model efficientnet_lite0 --layer blocks.5 --data photos/ --steps 256\n"
                     "  cnnviz microscope --model fashion_cnn --layer features.block2 --diversity 3 --out sheet/")
def microscope_command(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--layer", "-l", required=True, metavar="NAME", help="layer (list: cnnviz layers MODEL)")
    add_model(parser)
    parser.add_argument("--data", "-d", metavar="PATH",
                        help="folder of images, or fashion-mnist / mnist (add :train for the training split): the "
                             "top patches and statistics (default: feature visualizations only)")
    parser.add_argument("--top", "-k", type=checked(PositiveInt, "--top"), default=9, metavar="K",
                        help="patches per channel (default: 9)")
    parser.add_argument("--steps", type=checked(PositiveInt, "--steps"), default=STEPS, metavar="N",
                        help=f"optimizer steps of each picture (default: {STEPS})")
    parser.add_argument("--diversity", type=checked(PositiveInt, "--diversity"), default=1, metavar="N",
                        help="pictures per channel, pushed apart from each other (default: 1)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"activation maximization preset of the pictures (default: actmax's, {default_preset()})")
    parser.add_argument("--cache", metavar="DIR", help="keep the sheet in DIR, reused while weights and data stay")
    parser.add_argument("--dissection", metavar="FILE",
                        help="the layer's dissection.json (cnnviz dissect): each channel's label with its IoU beside "
                             "it (kept in --cache too, where cnnviz serve shows it)")
    add_out(parser, "cnnviz-microscope")

    def run(args: argparse.Namespace) -> None:
        from cnnviz.explorer.identity import model_identity  # the explorer's cache naming, loaded when used
        from cnnviz.explorer.sheet_job import cached_sheet, dissection_file
        from cnnviz.interpret.inside import read_dissection

        handle = load_handle(args)
        layer = layer_name(handle.model, handle.layer(args.layer))
        labels = read_dissection(handle, Path(args.dissection), layer) if args.dissection else None
        sheet = cached_sheet(handle, layer, args.data, cache=Path(args.cache) if args.cache else None,
                             top=args.top, steps=args.steps, diversity=args.diversity, preset=args.preset,
                             progress=True)
        if labels is not None and args.cache:
            write_json(dissection_file(Path(args.cache), model_identity(handle), layer), labels.as_dict())
        path = write_sheet(handle, sheet, args.data, output_dir(args.out), labels)
        dead = "" if sheet.stats is None else f", {int((~sheet.stats.alive).sum())} dead"
        images = "" if sheet.atlas is None else f", {sheet.atlas.count} images"
        print(f"{path}  ({sheet.channels} channels{dead}{images}; pictures: {sheet.preset}, {sheet.steps} steps)")

    return run


def write_sheet(handle: ModelHandle, sheet: LayerSheet, data: str | None, out: Path,
                labels: Dissection | None = None) -> Path:
    """``sheet.png``, one card per channel in ``units/``, ``sheet.npz`` and ``sheet.json`` (returned); with
    ``labels``, each channel's dissection label beside it."""
    title = f"{handle.name} {sheet.layer}: what each of its {sheet.channels} channels looks for"
    save_image(out / "sheet.png", sheet_overview(sheet, title, labels=labels))
    label = labels.label if labels is not None else lambda channel: None
    cards = out / "units"
    if sheet.atlas is not None and data is not None:
        for ex in channel_examples(handle, sheet.atlas, open_dataset(data)):
            save_image(cards / f"unit-{ex.channel:04d}.png",
                       unit_card(sheet, ex.channel, ex.top_images, label=label(ex.channel)))
    else:
        for channel in range(sheet.channels):
            save_image(cards / f"unit-{channel:04d}.png", unit_card(sheet, channel, label=label(channel)))
    zoo.atomic_write(out / "sheet.npz", lambda file: np.savez(file, **sheet.to_arrays()))
    index = sheet.to_dict()
    for unit in index["units"]:
        found = label(unit["channel"])
        unit["label"] = found.as_dict() if found is not None else None
    if sheet.atlas is not None and data is not None:
        dataset = open_dataset(data)
        for unit in index["units"]:
            for entry in unit["top"]:
                entry["name"] = image_name(dataset, entry["index"])
    return write_json(out / "sheet.json", index)
