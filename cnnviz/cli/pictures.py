"""What each channel a command names looks for, without a sheet made beforehand: the ``--pictures-steps`` and
``--no-pictures`` options (declared once, for ``explain`` and ``atlas``) and the pictures of just the channels a
command draws (:func:`interpret.layer_sheet` with ``channels``: a sheet holding those channels' pictures only).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from cnnviz.cli.options import checked
from cnnviz.interpret.inside import SHEET_STEPS, LayerSheet, layer_sheet
from cnnviz.zoo.core import PositiveInt
from cnnviz.zoo.handle import ModelHandle

LIMIT = 64  # most channels whose pictures a command makes unasked (one optimization; beyond, an hour on a CPU)

COST = ("each step is one forward and backward pass of a batch with a row per channel drawn: about a second in all "
        "for a few channels of fashion_cnn, about 0.6 s a step for 6 channels of efficientnet_lite0 on one CPU core "
        "(75 s at 128 steps)")


def add_pictures(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--pictures-steps N`` and ``--no-pictures``: the pictures of what each channel of ``what`` looks for.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_pictures(parser, "the concept panel")
        >>> parser.parse_args(["--pictures-steps", "8"]).pictures_steps, parser.parse_args([]).no_pictures
        (8, False)
    """
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
