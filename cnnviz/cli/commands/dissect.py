"""``cnnviz dissect``: network dissection, a concept and its IoU for every unit of a layer (Bau et al. 2017).

The computing is :func:`interpret.dissect`; this parses the flags, writes ``OUT/dissection.json`` and prints
a short table.
"""

from __future__ import annotations

import argparse

from cnnviz.cli.options import add_model, add_out, chosen_layer, load_handle, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret.inside import Dissection, dissect
from cnnviz.zoo.core import option_type, write_json

DESCRIPTION = """\
Network dissection (Bau et al., CVPR 2017) gives each unit (channel) of a layer a word: the concept
its strongest activations overlap best in segmentation masks.

  1. each unit's threshold: the value its activations exceed at the top --quantile (0.5 %) of all
     positions of all images (exact, in one streamed pass);
  2. each image's activation map, upsampled bilinearly to its mask and thresholded;
  3. IoU with each concept's mask, intersections and unions summed over all images (a second pass);
  4. the unit is labelled with its best concept, and counts as a detector from --detector-iou (0.04).

--data is a folder of images with masks, or fashion-scenes[:COUNT] (Fashion-MNIST scenes pasted at the
model's input size from the test split, seed 0, 500 by default; their masks come with them):

  DATA/images/STEM.png   and  DATA/masks/STEM.png  (or --masks DIR): one value a pixel, k > 0 is
                              concept k, 0 no concept; names in DATA/concepts.txt (line k names k)
  or one file per concept:    DATA/masks/STEM/CONCEPT.png, non-zero where CONCEPT is

Masks have their image's size; images not at the model's input size are resized whole (not cropped).
A concept the masks never mark is skipped with a note. Writes OUT/dissection.json (units: channel,
concept, iou, detector; threshold; counts per concept) and prints how many units detect each concept.

examples:
  cnnviz dissect --model fashion_seg --layer features.3 --data fashion-scenes
  cnnviz dissect --model fashion_seg --layer classifier --data fashion-scenes:2000 --out seg-dissect
  cnnviz dissect --model efficientnet_lite0 --layer blocks.5 --data broden/ --masks broden/masks"""


@command("dissect", "label each unit of a layer with the concept its top activations overlap (network dissection)",
         order=45, description=DESCRIPTION)
def dissect_command(parser: argparse.ArgumentParser) -> Run:
    add_model(parser)
    parser.add_argument("--layer", "-l", metavar="NAME",
                        help="layer with spatial maps (default: the model's default layer; list: cnnviz layers)")
    parser.add_argument("--data", "-d", required=True, metavar="PATH",
                        help="folder of images/ (with masks/ beside them), or fashion-scenes[:COUNT]")
    parser.add_argument("--masks", metavar="DIR", help="the masks folder, when not DATA/masks or beside DATA")
    parser.add_argument("--quantile", "-q", type=option_type(dissect, "quantile"), default=0.005, metavar="Q",
                        help="top fraction of a unit's activations that counts as firing (default: 0.005)")
    parser.add_argument("--detector-iou", type=option_type(dissect, "detector_iou"), default=0.04, metavar="IOU",
                        help="IoU from which a unit counts as a detector (default: 0.04)")
    parser.add_argument("--batch-size", type=option_type(dissect, "batch_size"), default=None, metavar="N",
                        help="images per batch (default: auto)")
    parser.add_argument("--workers", type=option_type(dissect, "workers"), default=None, metavar="N",
                        help="data loading processes (default: 0 for data in memory, else up to 4)")
    add_out(parser, "cnnviz-dissect")

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        layer = chosen_layer(args, handle)
        out = output_dir(args.out)  # a bad --out fails before the passes
        found = dissect(handle, layer, args.data, masks=args.masks, quantile=args.quantile,
                        detector_iou=args.detector_iou, batch_size=args.batch_size, workers=args.workers)
        path = write_json(out / "dissection.json", found.as_dict())
        print("\n".join(table(found)))
        print(path)

    return run


def table(found: Dissection) -> list[str]:
    """The printed summary: per concept its detectors and its best unit, then the notes.

    Example:
        >>> from cnnviz.interpret.inside import Threshold, UnitLabel
        >>> found = Dissection("conv", "net", "f", "data", 2, (4, 4), ("Bag",), 0.04, Threshold(0.005, (1.0,)),
        ...                    [UnitLabel(0, "Bag", 0.25, True)])
        >>> print("\\n".join(table(found)))
        net conv over data (2 images): 1 units, 1 detectors (IoU >= 0.04)
        concept      detectors  best unit
        Bag                  1  #0 IoU 0.250
    """
    best: dict[str, tuple[int, float]] = {}
    for unit in found.units:
        if unit.concept is not None and unit.iou > best.get(unit.concept, (-1, -1.0))[1]:
            best[unit.concept] = (unit.channel, unit.iou)
    width = max(12, *(len(c) for c in found.concepts))
    lines = [f"{found.model} {found.layer} over {found.data} ({found.images} images): {len(found.units)} units, "
             f"{len(found.detectors)} detectors (IoU >= {found.detector_iou:g})",
             f"{'concept':<{width}} detectors  best unit"]
    for concept, count in found.counts.items():
        channel, iou = best.get(concept, (None, 0.0))
        shown = "none labelled" if channel is None else f"#{channel} IoU {iou:.3f}"
        lines.append(f"{concept:<{width}} {count:>9}  {shown}")
    return lines + [f"note: {note}" for note in found.notes]
