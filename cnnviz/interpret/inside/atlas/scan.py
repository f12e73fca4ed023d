"""Neuron atlas: for every channel of a layer, the images and patches of a dataset that excite it most.

A channel's response to an image is the maximum of its map; the position of
that maximum is the unit whose receptive field gives the patch. One
streaming pass over the dataset keeps, per channel, the running top-k and
bottom-k (value, dataset index, position) on the device, merged a few
thousand images at a time; nothing about the images is stored. Only afterwards are the winning
images loaded again, to crop the patches. Ties at the ceiling of a layer that ends in a saturating activation
(ReLU6, hardtanh, sigmoid, tanh...: every top image may read exactly 6.0) are ranked by the pre-activation (the
input of that activation, its maximum over the map, whose unit marks the patch), then by dataset index; other
ties by dataset index. So the answer does not depend on batch order, and under ``torchrun`` the
shards' top-k merge to exactly the single-process result.

What ranks the images is the channel's activation by default; ``score=`` takes any per-batch scoring with the
same shape of answer (a value and a unit per channel), such as relevance maximization
(:func:`interpret.relevance_ranking`, built where the relevance is computed and handed in from above).

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> atlas = neuron_atlas(handle, "blocks.2", "photos/", top=4)  # doctest: +SKIP
    >>> atlas.top_values.shape  # doctest: +SKIP
    torch.Size([24, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.core.batching import auto_batch_size
from cnnviz.interpret.core.distributed import Group, agree, current, shard_batches, smallest
from cnnviz.interpret.inside.atlas.feed import Preparer, default_workers, prefetch
from cnnviz.interpret.inside.atlas.topk import TopK, merge_ranks
from cnnviz.interpret.inside.fields.receptive_field import layer_field
from cnnviz.interpret.inside.fields.types import Box, ReceptiveField
from cnnviz.interpret.inside.up_to_layer import layer_runner
from cnnviz.zoo.core import CnnvizError, preserve
from cnnviz.zoo.data import DataSource, open_dataset
from cnnviz.zoo.handle import ModelHandle, as_handle, layer_name

MERGE_COLUMNS = 2048  # images gathered on the device between two top-k merges

@dataclass
class Atlas:
    """The result of :func:`neuron_atlas`, on the CPU.

    Attributes:
        layer: dotted name of the layer.
        count: images in the dataset.
        map_size: ``(h, w)`` of the layer's map.
        top_values, top_indices: ``(C, k)`` strongest responses (max over the
            map) and the dataset indices of their images, best first.
        top_positions: ``(C, k, 2)`` ``(y, x)`` of the maximum in the map.
        top_ties: ``(C, k)`` what ranked equal values: the pre-activation's maximum for a saturating layer
            (zeros otherwise; ties then go to the smaller index).
        bottom_values, bottom_indices, bottom_positions: the same for the
            weakest responses, weakest first.
        field: the layer's receptive field (None when arithmetic cannot give
            it; patches are then whole images).
        field_reason: why ``field`` is None.
        input_size: side of the model's input.
        ranked_by: what the values are: ``activation`` (the channel's maximum) or the name given with ``score=``
            (``relevance``: the channel's share of the relevance for the class).
    """

    layer: str
    count: int
    map_size: tuple[int, int]
    top_values: torch.Tensor
    top_indices: torch.Tensor
    top_positions: torch.Tensor
    bottom_values: torch.Tensor
    bottom_indices: torch.Tensor
    bottom_positions: torch.Tensor
    field: ReceptiveField | None
    field_reason: str
    input_size: int
    ranked_by: str = "activation"
    top_ties: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        """Channels of the layer."""
        return int(self.top_values.shape[0])

    @property
    def dead(self) -> list[int]:
        """Channels never positive anywhere on any image of the dataset (by relevance: never used for the class)."""
        return [int(c) for c in (self.top_values[:, 0] <= 0).nonzero().flatten()]

    def box(self, channel: int, rank: int, *, bottom: bool = False, clip: bool = True) -> Box:
        """The input box of the unit behind entry ``rank`` of ``channel`` (clipped to the image
        unless ``clip=False``; the whole image when the field is unknown)."""
        positions = self.bottom_positions if bottom else self.top_positions
        y, x = (int(v) for v in positions[channel, rank])
        if self.field is None:
            return Box(0, 0, self.input_size, self.input_size)
        return self.field.box(y, x, channel=channel, clip=clip)

    def top_arrays(self) -> dict[str, np.ndarray]:
        """The top entries as named arrays (what a cache file keeps; :meth:`from_top_arrays` reads them back)."""
        return {"values": self.top_values.numpy(), "indices": self.top_indices.numpy(),
                "positions": self.top_positions.numpy(), "map_size": np.array(self.map_size),
                "count": np.array(self.count),
                "ties": (self.top_ties if self.top_ties is not None else torch.zeros_like(self.top_values)).numpy()}

    @classmethod
    def from_top_arrays(cls, layer: str, arrays: Mapping[str, np.ndarray], field: ReceptiveField | None,
                        field_reason: str, input_size: int) -> Atlas:
        """An atlas of top entries only from :meth:`top_arrays` (and the layer's receptive field, for the boxes).

        Example:
            >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
            >>> atlas = neuron_atlas(net, "0", torch.rand(3, 1, 8, 8), top=2, progress=False)
            >>> again = Atlas.from_top_arrays("0", atlas.top_arrays(), atlas.field, "", 8)
            >>> torch.equal(again.top_indices, atlas.top_indices), again.count
            (True, 3)
        """
        values, indices, positions = (torch.from_numpy(np.asarray(arrays[name]))
                                      for name in ("values", "indices", "positions"))
        ties = torch.from_numpy(np.asarray(arrays["ties"])) if "ties" in arrays else None
        channels = values.shape[0]
        return cls(layer, int(arrays["count"]), tuple(int(v) for v in arrays["map_size"]), values, indices,
                   positions, torch.empty(channels, 0), torch.empty(channels, 0, dtype=torch.int64),
                   torch.empty(channels, 0, 2, dtype=torch.int64), field, field_reason, input_size, top_ties=ties)

    def to_dict(self, names: Callable[[int], str] | None = None) -> dict[str, Any]:
        """A JSON-ready index: per channel the top and bottom entries with boxes, and the dead channels."""
        names = names or (lambda i: f"#{i}")

        def entries(c: int, bottom: bool) -> list[dict[str, Any]]:
            values, indices, positions = ((self.bottom_values, self.bottom_indices, self.bottom_positions) if bottom
                                          else (self.top_values, self.top_indices, self.top_positions))
            return [{"index": int(indices[c, r]), "name": names(int(indices[c, r])),
                     self.ranked_by: float(values[c, r]), "position": [int(p) for p in positions[c, r]],
                     "box": list(self.box(c, r, bottom=bottom))} for r in range(values.shape[1])]

        field = None if self.field is None else {
            "size": list(self.field.size), "jump": list(self.field.jump), "start": list(self.field.start),
            "offset": list(self.field.offset), "same_for_all_channels": self.field.same_for_all}
        return {"layer": self.layer, "ranked_by": self.ranked_by, "images": self.count, "map_size": list(self.map_size),
                "input_size": self.input_size, "receptive_field": field, "receptive_field_note": self.field_reason,
                "box_format": "[top, left, bottom, right), input pixels of the prepared image",
                "dead_channels": self.dead,
                "channels": [{"channel": c, "top": entries(c, False), "bottom": entries(c, True)}
                             for c in range(self.channels)]}


Scores = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def neuron_atlas(model: nn.Module, layer: str | nn.Module, data: DataSource, *, top: int = 9,
                 bottom: int | None = None, batch_size: int | None = None, workers: int | None = None,
                 progress: bool = True, score: Scores | None = None, ranked_by: str = "score",
                 observe: Callable[[torch.Tensor], None] | None = None) -> Atlas:
    """Per channel of ``layer``: the top-k and bottom-k images of ``data``, with the unit behind each.

    One pass in batches on the model's device; the running top-k stays on
    the device. Under ``torchrun`` (an initialized process group) each rank
    takes every world-th batch and the results are gathered and merged
    exactly on every rank.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        layer: the layer (dotted name or module); conv maps or flat features.
        data: a folder, ``"fashion-mnist"``, a tensor batch or a torch Dataset (see :func:`open_dataset`).
        top: images kept per channel (best first).
        bottom: weakest images kept per channel (default: ``top``).
        batch_size: images per forward pass (default: automatic, agreed across ranks).
        workers: DataLoader processes (default: :func:`default_workers`).
        progress: show a progress bar (rank 0 only).
        score: ranks by something else than the activation: a function of a batch ``(B, C, H, W)`` in [0, 1]
            giving ``(values, positions)``, both ``(B, channels)``: each channel's value for each image and the
            flat position in the layer's map of the unit that marks its patch. It runs with gradients allowed.
        ranked_by: the name of what ``score`` gives (kept in the atlas and its index).
        observe: called with each batch's layer output ``(B, C, h, w)`` (ranking by activation only), to gather
            more of the same pass (the layer sheet's statistics).

    Returns:
        An :class:`Atlas` on the CPU.

    Example:
        >>> import torchvision
        >>> atlas = neuron_atlas(torchvision.models.alexnet(), "features.0", torch.rand(4, 3, 224, 224), top=2)
        >>> atlas.top_indices.shape
        torch.Size([64, 2])
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    name = layer_name(handle.model, module)
    bottom = top if bottom is None else bottom
    if top < 1 or bottom < 0:
        raise CnnvizError(f"top must be at least 1 and bottom at least 0, got top={top}, bottom={bottom}")
    dataset = open_dataset(data)
    group = current()
    count = agree(len(dataset), group, "the number of images")  # type: ignore[arg-type]
    if max(top, bottom) > count:
        raise CnnvizError(f"top-{max(top, bottom)} asked for, but the dataset has {count} image(s): use --top {count} "
                          "or fewer")
    field, reason = layer_field(handle, module)  # also refuses a layer that runs twice per pass
    if observe is not None and score is not None:
        raise CnnvizError("observe sees the activation: it does not go with score=")
    scan = _Scan(handle, module, name, dataset, count, top, bottom, group, score, observe)
    with preserve(handle), (torch.no_grad() if score else torch.inference_mode()):  # a score may need gradients
        best, worst, map_size = _stream(scan, batch_size, workers, progress)
    return Atlas(name, count, map_size, best.values.float().cpu(), best.indices.cpu(), _yx(best.positions, map_size),
                 worst.values[:, :bottom].float().cpu(), worst.indices[:, :bottom].cpu(),
                 _yx(worst.positions[:, :bottom], map_size), field, reason, handle.input_size,
                 ranked_by if score else "activation", best.ties.float().cpu())


@dataclass(frozen=True)
class _Scan:
    """What one atlas pass reads: the layer of a model, over a dataset (this rank's share under torchrun)."""

    handle: ModelHandle
    module: nn.Module
    name: str
    dataset: Dataset
    count: int
    top: int
    bottom: int
    group: Group
    score: Scores | None = None
    observe: Callable[[torch.Tensor], None] | None = None


def _yx(flat: torch.Tensor, map_size: tuple[int, int]) -> torch.Tensor:
    """Flat map positions as ``(..., 2)`` ``(y, x)`` on the CPU."""
    width = map_size[1]
    return torch.stack([flat // width, flat % width], dim=-1).cpu()


def _stream(scan: _Scan, batch_size: int | None, workers: int | None,
            progress: bool) -> tuple[TopK, TopK, tuple[int, int]]:
    """The top-k and bottom-k of every channel over the dataset, and the map size: one pass in batches."""
    handle, module, name, top, bottom, group = scan.handle, scan.module, scan.name, scan.top, scan.bottom, scan.group
    dataset = scan.dataset
    device = handle.device
    probe = _as_maps(layer_output(handle, module, torch.zeros(1, handle.in_channels, handle.input_size,
                                                               handle.input_size, device=device)), name)
    channels, height, width = probe.shape[1:]
    batch_size = smallest(batch_size or auto_batch_size(handle), group)
    batches = shard_batches(scan.count, batch_size, group)
    workers = default_workers(dataset) if workers is None else workers
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=Preparer(handle), num_workers=workers,
                        pin_memory=device.type == "cuda")
    best = TopK.empty(channels, top, True, device)
    worst = TopK.empty(channels, max(bottom, 1), False, device)
    # Batches wait on the device and are merged a few thousand columns at a time: two sorts per
    # merge, so merging every small batch would cost more than the spatial max itself.
    pending: list[tuple[torch.Tensor, ...]] = []
    flush_at = max(MERGE_COLUMNS, 4 * top)

    def flush() -> None:
        nonlocal best, worst
        if pending:
            values, indices, positions, ties = (torch.cat(parts, dim=1) for parts in zip(*pending))
            best = best.merge(values, indices, positions, ties)
            if bottom:
                worst = worst.merge(values, indices, positions, ties)
            pending.clear()

    bar = tqdm(total=len(batches), desc=f"atlas {name}", unit="batch", leave=False,
               disable=not progress or not group.leader or len(batches) < 5)
    stream = prefetch(iter(loader))
    score = scan.score or _activation(handle, module, name, sum(len(rows) for rows in batches), batch_size,
                                      scan.observe or (lambda maps: None))
    try:
        for rows, images in zip(batches, stream):
            values, positions, *tied = score(images.to(device, non_blocking=True))
            ties = tied[0] if tied else torch.zeros_like(values)
            # Batches are index ranges: arange on the device, no host-to-device copy to wait for.
            indices = torch.arange(rows[0], rows[-1] + 1, device=device).expand(channels, -1)
            pending.append((values.T, indices, positions.T, ties.T))
            if len(pending) * len(rows) >= flush_at:
                flush()
            bar.update()
        flush()
    finally:
        stream.close()
        bar.close()
    return merge_ranks(best, group), merge_ranks(worst, group), (int(height), int(width))


SATURATING = (nn.Hardtanh, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh)  # ReLU6 is a Hardtanh


def saturating_end(module: nn.Module) -> nn.Module | None:
    """The activation ``module`` ends in (itself or its last submodule) when it saturates, else None (the scan
    then checks that this activation's output is the layer's).

    Example:
        >>> saturating_end(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU6())), saturating_end(nn.ReLU())
        (ReLU6(), None)
    """
    last = list(module.modules())[-1]
    return last if isinstance(last, SATURATING) else None


def _activation(handle: ModelHandle, module: nn.Module, name: str, rows: int, batch_size: int,
                observe: Callable[[torch.Tensor], None]) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
    """The default ranking: each channel's maximum over its map, and where it is (the first maximum on ties).
    For a layer ending in a saturating activation, also the pre-activation's maximum (the tie key), and the
    unit where it is (where the activation is at its maximum too: the activation is monotone). ``observe`` sees
    each batch's maps."""
    end = saturating_end(module)
    if end is None:
        forward = layer_runner(handle, module, rows, batch_size)

        def activation(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
            maps = _as_maps(forward(images), name)
            observe(maps)
            return tuple(maps.flatten(2).max(dim=2))

        return activation

    def saturated(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        hook = end.register_forward_hook(lambda _module, inputs, output: seen.append((inputs[0], output)))
        try:
            raw = layer_output(handle, module, images)
        finally:
            hook.remove()
        output = _as_maps(raw, name)
        observe(output)
        output = output.flatten(2)
        if not seen or seen[0][1] is not raw:  # the activation is not what the layer answers: no tie key
            return tuple(output.max(dim=2))
        pre, positions = _as_maps(seen[0][0], name).flatten(2).max(dim=2)
        return output.amax(dim=2), positions, pre

    return saturated


def _as_maps(output: torch.Tensor, name: str) -> torch.Tensor:
    if output.dim() == 2:  # flat features: one unit per channel that sees the whole image
        return output[:, :, None, None]
    if output.dim() != 4:
        raise CnnvizError(f"layer {name!r} outputs shape {tuple(output.shape)}: the atlas needs (B, C, H, W) "
                          "maps or (B, C) features")
    return output