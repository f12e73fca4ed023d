"""Drawing a layer sheet (:func:`interpret.layer_sheet`): every channel's feature visualization beside its top
patches, and the words a front end prints beside a channel (its statistics, its dissection label with the IoU).

Example:
    >>> import torch
    >>> from types import SimpleNamespace as Sheet
    >>> stats = Sheet(mean=torch.tensor([0.5, 0.0]), sparsity=torch.tensor([0.25, 1.0]),
    ...               alive=torch.tensor([True, False]))
    >>> sheet = Sheet(layer="l", channels=2, pictures=torch.rand(2, 1, 3, 8, 8), stats=stats, atlas=None)
    >>> unit_words(sheet, 1)
    'dead (never positive)'
    >>> sheet_overview(sheet, "l").dtype
    dtype('uint8')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cnnviz.interpret.views.labels import Label, label_words
from cnnviz.interpret.views.pixels import caption, captioned_grid, enlarge, fit, hstack, to_uint8
from cnnviz.interpret.views.sheets import Picture, patch_tile, picture

def unit_words(sheet: Any, channel: int, label: Label | None = None) -> str:
    """What a page prints beside a channel: dead, or its mean and how often it is zero; its label if any.

    Example:
        >>> from types import SimpleNamespace as Sheet
        >>> stats = Sheet(mean=torch.tensor([0.5]), sparsity=torch.tensor([0.25]), alive=torch.tensor([True]))
        >>> unit_words(Sheet(stats=stats), 0, Sheet(concept="Shirt", iou=0.1, detector=True))
        'mean 0.5, zero 25% · Shirt (IoU 0.1)'
    """
    parts = []
    still = getattr(sheet, "still", None)
    if still is not None and bool(still[channel]):
        parts.append("its picture did not move (no gradient from where it started)")
    stats = getattr(sheet, "stats", None)
    if stats is not None:
        parts.append("dead (never positive)" if not bool(stats.alive[channel]) else
                     f"mean {float(stats.mean[channel]):.3g}, zero {float(stats.sparsity[channel]):.0%}")
    if label_words(label):
        parts.append(label_words(label))
    return " · ".join(parts)


def sheet_overview(sheet: Any, title: str, *, labels: Any = None,
                   side: int = 96) -> Picture:
    """Every channel's first feature visualization, captioned with the channel, dead, and its label from
    ``labels`` (a :class:`~interpret.inside.Dissection` of the layer)."""
    labels = labels.label if labels is not None else lambda channel: None
    tiles = [fit(enlarge(to_uint8(sheet.pictures[c, 0]), side), side) for c in range(sheet.channels)]
    stats = getattr(sheet, "stats", None)
    texts = [" ".join(part for part in (f"c{c}", "dead" if stats is not None and not bool(stats.alive[c]) else "",
                                        label_words(labels(c))) if part) for c in range(sheet.channels)]
    return picture(caption(captioned_grid(tiles, texts), title))


def unit_card(sheet: Any, channel: int, top_images: Sequence[torch.Tensor] = (), *, label: Label | None = None,
              side: int = 96) -> Picture:
    """One channel: its feature visualizations, beside them its top patches (the receptive field of the maximal unit in
    each of ``top_images``, the items of the sheet's atlas), captioned with its words."""
    rows = []
    looks = sheet.picture(channel)  # None: the sheet has no picture of it
    if looks is not None:
        rows.append(caption(hstack([fit(enlarge(to_uint8(p), side), side) for p in looks], pad=2), "looks for"))
    if len(top_images) and sheet.atlas is not None:
        atlas = sheet.atlas
        patches = [fit(enlarge(patch_tile(im, atlas.box(channel, r, clip=False), atlas.input_size), side), side)
                   for r, im in enumerate(top_images)]
        texts = [f"{v:.2f}" for v in atlas.top_values[channel, :len(patches)].tolist()]
        rows.append(caption(captioned_grid(patches, texts, len(patches)), f"top-{len(patches)} patches of the data"))
    words = unit_words(sheet, channel, label)
    return picture(caption(hstack(rows, pad=12), f"{sheet.layer} channel {channel}" + (f": {words}" if words else "")))
