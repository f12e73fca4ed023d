"""What the atlas shows of a channel: its top and bottom images as the model saw them, the
receptive-field box of the maximal unit in each, and the cropped patches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnviz.interpret.inside.atlas.feed import Preparer
from cnnviz.interpret.inside.fields.types import Box
from cnnviz.zoo.handle import ModelHandle, as_handle
from cnnviz.zoo.data import DataSource, open_dataset

if TYPE_CHECKING:  # for annotations only
    from cnnviz.interpret.inside.atlas.scan import Atlas


def load_prepared(handle: ModelHandle, dataset: Dataset, indices: Sequence[int]) -> torch.Tensor:
    """Items ``indices`` of ``dataset`` prepared as the model saw them, ``(n, C, S, S)`` on the CPU."""
    prepare = Preparer(handle)
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(list(indices)) if callable(getitems) else [dataset[i] for i in indices]
    return prepare(items)


def crop(image: torch.Tensor, box: Box) -> torch.Tensor:
    """The pixels of ``image`` (``(C, H, W)``) inside ``box``."""
    return image[:, box.top:box.bottom, box.left:box.right]


@dataclass
class ChannelExamples:
    """What to show for one channel.

    Attributes:
        channel: the channel.
        top_images: ``(k, C, S, S)`` strongest images, as the model saw them.
        top_boxes: the receptive-field box of the maximal unit in each.
        top_patches: the images cropped to those boxes (sizes differ where clipped).
        bottom_images: ``(k', C, S, S)`` weakest images.
    """

    channel: int
    top_images: torch.Tensor
    top_boxes: list[Box]
    top_patches: list[torch.Tensor]
    bottom_images: torch.Tensor


def channel_examples(handle: nn.Module, atlas: Atlas, data: DataSource, channels: Sequence[int] | None = None,
                     *, chunk: int = 64) -> Iterator[ChannelExamples]:
    """The images, boxes and patches of ``channels`` (default all), loading each needed image once
    per ``chunk`` channels (memory stays bounded on big layers).

    Example:
        >>> for ex in channel_examples(handle, atlas, "photos/", [0, 1]):  # doctest: +SKIP
        ...     print(ex.channel, [tuple(p.shape) for p in ex.top_patches])
    """
    handle = as_handle(handle)
    dataset = open_dataset(data)
    channels = list(range(atlas.channels)) if channels is None else list(channels)
    for start in range(0, len(channels), chunk):
        part = channels[start:start + chunk]
        wanted = sorted({int(i) for c in part for i in (*atlas.top_indices[c], *atlas.bottom_indices[c])})
        images = dict(zip(wanted, load_prepared(handle, dataset, wanted)))
        for c in part:
            boxes = [atlas.box(c, r) for r in range(atlas.top_indices.shape[1])]
            tops = [images[int(i)] for i in atlas.top_indices[c]]
            bottoms = [images[int(i)] for i in atlas.bottom_indices[c]]
            yield ChannelExamples(c, torch.stack(tops), boxes, [crop(im, b) for im, b in zip(tops, boxes)],
                                  torch.stack(bottoms) if bottoms else torch.empty(0, *tops[0].shape))
