"""What each channel a command names looks for and what it is called: the ``--sheet``, ``--dissection``,
``--pictures-steps`` and ``--no-pictures`` options (declared once, for ``explain`` and ``atlas``), the given sheet
and dissection (refused with one line when made for another layer or other weights), and, without a sheet made
beforehand, the pictures of just the channels a command draws (:func:`interpret.layer_sheet` with ``channels``: a
sheet holding those channels' pictures only).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from cnnviz.cli.options import checked
from cnnviz.interpret.inside import SHEET_STEPS, Dissection, LayerSheet, layer_sheet, load_sheet, read_dissection
from cnnviz.zoo.core import CnnvizError, PositiveInt
from cnnviz.zoo.handle import ModelHandle, layer_name

LIMIT = 64  # most channels whose pictures a command makes unasked (one optimization; beyond, an hour on a CPU)

COST = ("each step is one forward and backward pass of a batch with a row per channel drawn: about a second in all "
        "for a few channels of fashion_cnn, about 0.6 s a step for 6 channels of efficientnet_lite0 on one CPU core "
        "(75 s at 128 steps)")


def add_pictures(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--sheet FILE``, ``--dissection FILE``, ``--pictures-steps N`` and ``--no-pictures``: what each channel
    of ``what`` looks for (a layer sheet, or pictures made of just its channels) and its dissection label.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_pictures(parser, "the concept panel")
        >>> parser.parse_args(["--pictures-steps", "8"]).pictures_steps, parser.parse_args([]).no_pictures
        (8, False)
    """
    parser.add_argument("--sheet", metavar="FILE",
                        help=f"the layer's sheet (cnnviz microscope's sheet.npz): {what} takes what each channel "
                             "looks for from it instead of making the pictures")
    parser.add_argument("--dissection", metavar="FILE",
                        help=f"the layer's dissection.json (cnnviz dissect): {what} names each channel by its "
                             "concept, with the IoU beside it (a weak label reads 'weak: NAME?')")
    parser.add_argument("--pictures-steps", type=checked(PositiveInt, "--pictures-steps"), default=SHEET_STEPS,
                        metavar="N",
                        help=f"{what} shows what each channel it names looks for: a feature visualization of "
                             f"just those channels, all in one optimization of N steps (default: {SHEET_STEPS}, as "
                             f"cnnviz microscope), unless --sheet gives them; {COST}. At most {LIMIT} channels are "
                             "made unasked")
    parser.add_argument("--no-pictures", action="store_true",
                        help=f"{what} without those pictures (no optimization)")


def channel_pictures(args: argparse.Namespace, handle: ModelHandle, layer: str, channels: Iterable[int], *,
                     instead: str) -> LayerSheet | None:
    """The pictures of ``channels`` of ``layer`` (a sheet holding theirs only, with a progress bar); None with
    ``--no-pictures``, or when they are more than :data:`LIMIT`: then one line says so and how to get them
    (``instead``)."""
    chosen = sorted({int(c) for c in channels})
    if args.no_pictures or not chosen:
        return None
    if len(chosen) > LIMIT:
        print(f"no pictures of what each channel looks for: {len(chosen)} channels of {layer} are more than the "
              f"{LIMIT} made unasked; {instead}")
        return None
    return layer_sheet(handle, layer, channels=chosen, steps=args.pictures_steps, progress=True)


def given_sheet(args: argparse.Namespace, handle: ModelHandle, layer: str | None) -> LayerSheet | None:
    """The sheet ``--sheet`` names, for ``layer`` (None: no --sheet); refused with one line when made from other
    weights or for another layer, before any work."""
    if not args.sheet:
        return None
    sheet = load_sheet(handle, Path(args.sheet))
    if layer is not None and layer_name(handle.model, handle.layer(layer)) != sheet.layer:
        raise CnnvizError(f"--sheet is the sheet of {sheet.layer}, but the layer drawn is {layer}: give --layer "
                          f"{sheet.layer} or that layer's sheet")
    return sheet


def given_labels(args: argparse.Namespace, handle: ModelHandle, layer: str | None) -> Dissection | None:
    """The dissection ``--dissection`` names, of ``layer`` (None: no --dissection); refused with one line when made
    from other weights or of another layer, so a stale label is never drawn."""
    if not args.dissection:
        return None
    name = None if layer is None else layer_name(handle.model, handle.layer(layer))
    return read_dissection(handle, Path(args.dissection), name)
