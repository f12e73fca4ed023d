"""A layer sheet (OpenAI Microscope's page of a layer, for any model): every channel's feature visualization, its
top dataset patches and its statistics.

The pictures come from one run of the optimization engine for all channels
(:func:`interpret.optimize.unit_pictures`); the patches and the statistics from one pass of the neuron atlas over
the data for the whole layer (:func:`~interpret.inside.atlas.neuron_atlas`, whose ``observe`` gathers the
statistics from the same batches). A sheet names the weights it was made from (:func:`interpret.core.weights_digest`):
read back for other weights, it is refused, never shown stale.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> sheet = layer_sheet(handle, "features.block1", torch.rand(20, 1, 28, 28), top=3, steps=4, progress=False)
    >>> sheet.pictures.shape, sheet.atlas.top_indices.shape, sheet.stats.mean.shape
    (torch.Size([16, 1, 1, 28, 28]), torch.Size([16, 3]), torch.Size([16]))
    >>> again = LayerSheet.from_arrays(handle, sheet.to_arrays())
    >>> torch.equal(again.atlas.top_indices, sheet.atlas.top_indices)
    True

Pictures of only some channels (what a panel naming a few channels shows; the others have none):

    >>> some = layer_sheet(handle, "features.block2", channels=[9, 2], steps=2, progress=False)
    >>> some.picture(9).shape, some.picture(3), some.made.nonzero().flatten().tolist()
    (torch.Size([1, 1, 28, 28]), None, [2, 9])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.interpret.core import auto_batch_size, layer_output, weights_digest
from cnnviz.interpret.inside.atlas import Atlas, neuron_atlas
from cnnviz.interpret.inside.fields import layer_field
from cnnviz.interpret.optimize import default_preset, unit_pictures, unmoved
from cnnviz.zoo.core import CnnvizError, PositiveInt, check_call
from cnnviz.zoo.data import DataSource, open_dataset
from cnnviz.zoo.handle import ModelHandle, as_handle, layer_name

STEPS = 128  # optimizer steps of each channel's picture, unless told


@dataclass
class UnitStats:
    """Per channel of a layer, over every position of every image seen: the sum, how many values were positive,
    the largest value; mergeable over chunks of data (:meth:`merge`).

    Example:
        >>> stats = UnitStats.empty(2)
        >>> stats.add(torch.tensor([[[[0.0, 2.0]], [[-1.0, 0.0]]]]))
        >>> stats.mean.tolist(), stats.sparsity.tolist(), stats.alive.tolist()
        ([1.0, -0.5], [0.5, 1.0], [True, False])
    """

    total: torch.Tensor
    active: torch.Tensor
    peak: torch.Tensor
    entries: int = 0

    @classmethod
    def empty(cls, channels: int) -> UnitStats:
        """Nothing seen yet."""
        return cls(torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.int64),
                   torch.full((channels,), float("-inf")))

    def add(self, maps: torch.Tensor) -> None:
        """Count a batch of the layer's output ``(B, C, h, w)``."""
        self.total += maps.double().sum((0, 2, 3)).cpu()
        self.active += (maps > 0).sum((0, 2, 3)).cpu()
        self.peak = torch.maximum(self.peak, maps.float().amax((0, 2, 3)).cpu())
        self.entries += maps.shape[0] * maps.shape[2] * maps.shape[3]

    def merge(self, other: UnitStats) -> UnitStats:
        """The statistics of both parts of the data together."""
        return UnitStats(self.total + other.total, self.active + other.active, torch.maximum(self.peak, other.peak),
                         self.entries + other.entries)

    @property
    def mean(self) -> torch.Tensor:
        """Mean activation per channel."""
        return (self.total / max(self.entries, 1)).float()

    @property
    def sparsity(self) -> torch.Tensor:
        """Fraction of positions (over all images) where the channel is not positive."""
        return 1 - self.active.double() / max(self.entries, 1)

    @property
    def alive(self) -> torch.Tensor:
        """Positive somewhere on some image (else dead)."""
        return self.active > 0

    def arrays(self) -> dict[str, np.ndarray]:
        return {"stats_total": self.total.numpy(), "stats_active": self.active.numpy(),
                "stats_peak": self.peak.numpy(), "stats_entries": np.array(self.entries)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> UnitStats:
        return cls(torch.from_numpy(np.asarray(arrays["stats_total"])),
                   torch.from_numpy(np.asarray(arrays["stats_active"])),
                   torch.from_numpy(np.asarray(arrays["stats_peak"])), int(arrays["stats_entries"]))


@dataclass
class LayerSheet:
    """What :func:`layer_sheet` returns, on the CPU.

    Attributes:
        model: the model's name; weights: :func:`interpret.core.weights_digest` of the weights it was made from.
        layer: dotted name; channels: how many the layer has.
        pictures: ``(channels, diversity, C, S, S)`` feature visualizations in [0, 1] (None: not made); of a sheet
            made for some channels only, those channels' pictures in channel order (read one through :meth:`picture`).
        atlas: the top dataset items of every channel, with the unit behind each (None: no data).
        stats: mean, sparsity, alive per channel over the data (None: no data).
        preset, steps, seed: how the pictures were made.
        still: per channel, True when its picture did not move from its start (the channel gives no gradient there:
            dead, or flat where the optimization began; :func:`interpret.optimize.unmoved`); False where none is made.
        made: per channel, True when its pictures are made (None: every channel's, when there are pictures).
    """

    model: str
    weights: str
    layer: str
    channels: int
    pictures: torch.Tensor | None
    atlas: Atlas | None
    stats: UnitStats | None
    preset: str
    steps: int
    seed: int = 0
    still: torch.Tensor | None = None
    made: torch.Tensor | None = None

    def picture(self, channel: int) -> torch.Tensor | None:
        """Channel ``channel``'s pictures ``(diversity, C, S, S)``, or None when the sheet has none of it."""
        if self.pictures is None or (self.made is not None and not bool(self.made[channel])):
            return None
        return self.pictures[channel if self.made is None else int(self.made[:channel].sum())]

    @property
    def nbytes(self) -> int:
        """Bytes its tensors hold (what a cache of sheets counts)."""
        tensors = [self.pictures, *(() if self.atlas is None else (self.atlas.top_values, self.atlas.top_indices,
                                                                    self.atlas.top_positions))]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def unit(self, channel: int) -> dict[str, Any]:
        """One channel's line: its statistics and its top items (index, activation, box) where known."""
        if not 0 <= channel < self.channels:
            raise CnnvizError(f"layer {self.layer!r} has channels 0 to {self.channels - 1}, not {channel}")
        made = self.picture(channel)
        found: dict[str, Any] = {"channel": channel, "pictures": 0 if made is None else len(made)}
        if self.still is not None and made is not None:
            found["picture_moved"] = not bool(self.still[channel])
        if self.stats is not None:
            found.update(mean=float(self.stats.mean[channel]), sparsity=float(self.stats.sparsity[channel]),
                         alive=bool(self.stats.alive[channel]))
        if self.atlas is not None:
            found["top"] = [{"index": int(self.atlas.top_indices[channel, r]),
                             "activation": float(self.atlas.top_values[channel, r]),
                             "box": list(self.atlas.box(channel, r))} for r in range(self.atlas.top_values.shape[1])]
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``sheet.json``): how it was made and every channel's line."""
        return {"model": self.model, "weights": self.weights, "layer": self.layer, "channels": self.channels,
                "preset": self.preset, "steps": self.steps, "seed": self.seed,
                "images": None if self.atlas is None else self.atlas.count,
                "dead": None if self.stats is None else [int(c) for c in (~self.stats.alive).nonzero().flatten()],
                "units": [self.unit(c) for c in range(self.channels)]}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for ``np.savez`` (pictures as 8-bit); :meth:`from_arrays` reads them back."""
        arrays = {"model": np.array(self.model), "weights": np.array(self.weights), "layer": np.array(self.layer),
                  "channels": np.array(self.channels), "preset": np.array(self.preset), "steps": np.array(self.steps),
                  "seed": np.array(self.seed)}
        if self.pictures is not None:
            arrays["pictures"] = (self.pictures * 255).round().to(torch.uint8).numpy()
        if self.still is not None:
            arrays["still"] = self.still.numpy()
        if self.made is not None:
            arrays["made"] = self.made.numpy()
        if self.atlas is not None:
            arrays.update({f"atlas_{k}": v for k, v in self.atlas.top_arrays().items()})
        if self.stats is not None:
            arrays.update(self.stats.arrays())
        return arrays

    @classmethod
    def from_arrays(cls, handle: ModelHandle, arrays: Mapping[str, np.ndarray]) -> LayerSheet:
        """A sheet kept by :meth:`to_arrays`, for ``handle``: refused with one line when it was made from other
        weights (or another model)."""
        weights = str(arrays["weights"])
        if str(arrays["model"]) != handle.name or weights != weights_digest(handle.model, handle.name):
            raise CnnvizError(f"this sheet of {arrays['layer']} was made from other weights ({arrays['model']} "
                              f"{weights[:8]}, not the {handle.name} loaded now): make it again for these weights "
                              "(cnnviz microscope)")
        layer = str(arrays["layer"])
        atlas = None
        if "atlas_values" in arrays:
            field, reason = layer_field(handle, layer)
            atlas = Atlas.from_top_arrays(layer, {k[6:]: v for k, v in arrays.items() if k.startswith("atlas_")},
                                          field, reason, handle.input_size)
        pictures = torch.from_numpy(np.asarray(arrays["pictures"])).float() / 255 if "pictures" in arrays else None
        return cls(handle.name, weights, layer, int(arrays["channels"]), pictures, atlas,
                   UnitStats.from_arrays(arrays) if "stats_total" in arrays else None, str(arrays["preset"]),
                   int(arrays["steps"]), int(arrays["seed"]),
                   torch.from_numpy(np.asarray(arrays["still"])) if "still" in arrays else None,
                   torch.from_numpy(np.asarray(arrays["made"])) if "made" in arrays else None)


def load_sheet(handle: ModelHandle, path: str | Path) -> LayerSheet:
    """The sheet kept at ``path``, for ``handle`` (refused with one line when made from other weights, or when
    ``path`` holds no sheet)."""
    try:
        with np.load(Path(path), allow_pickle=False) as kept:
            arrays = dict(kept)
    except (OSError, ValueError) as exc:
        raise CnnvizError(f"{path} is not a layer sheet ({str(exc).splitlines()[0]}): give the sheet.npz that "
                          "cnnviz microscope writes") from None
    if "weights" not in arrays:
        raise CnnvizError(f"{path} is not a layer sheet: give the sheet.npz that cnnviz microscope writes")
    return LayerSheet.from_arrays(handle, arrays)


def layer_channels(handle: ModelHandle, layer: str | nn.Module) -> int:
    """How many channels ``layer`` outputs (one probe pass, up to the layer); one channel or none is refused,
    since a sheet sets a layer's channels side by side.

    Example:
        >>> from cnnviz import zoo
        >>> layer_channels(zoo.load("fashion_cnn", device="cpu"), "features.block2")
        64
    """
    with torch.no_grad():
        probe = layer_output(handle, layer, torch.zeros(1, handle.in_channels, handle.input_size, handle.input_size,
                                                        device=handle.device))
    name = layer if isinstance(layer, str) else layer_name(handle.model, layer)
    if probe.dim() < 2 or probe.shape[1] < 2:
        raise CnnvizError(f"layer {name!r} has {'no channel axis' if probe.dim() < 2 else 'one channel'}: a sheet "
                          "sets a layer's channels side by side; pick a layer with several (cnnviz layers MODEL)")
    return int(probe.shape[1])


def layer_sheet(model: nn.Module, layer: str, data: DataSource | None = None, *, top: PositiveInt = 9,
                steps: PositiveInt = STEPS, diversity: PositiveInt = 1, preset: str | None = None, seed: int = 0,
                pictures: bool = True, channels: Sequence[int] | None = None, batch_size: PositiveInt | None = None,
                progress: bool = True) -> LayerSheet:
    """The sheet of ``layer``: every channel's feature visualization (one optimization for all of them), its
    top-``top`` items of ``data`` and its statistics (one pass over the data for the whole layer).

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        layer: the layer's dotted name (at least two channels).
        data: a folder, ``"fashion-mnist"``, a tensor batch or a torch Dataset; None: pictures only.
        top: dataset items kept per channel.
        steps: optimizer steps per picture.
        diversity: pictures per channel, pushed apart from each other.
        preset: the :func:`interpret.actmax` preset (default: its default).
        seed: seeds the pictures.
        pictures: False: the scan only (statistics and patches).
        channels: the channels that get pictures (default: all); the others have none (:meth:`LayerSheet.picture`),
            so a panel naming a few channels pays for those only.
        batch_size: rows of the optimization (default: what fits).

    Returns:
        A :class:`LayerSheet` on the CPU.
    """
    check_call(layer_sheet, {"top": top, "steps": steps, "diversity": diversity, "batch_size": batch_size})
    handle = as_handle(model)
    module = handle.layer(layer)
    name = layer_name(handle.model, module)
    count = layer_channels(handle, module)
    chosen = list(range(count)) if channels is None else sorted({int(c) for c in channels})
    wrong = [c for c in chosen if not 0 <= c < count]
    if wrong:
        raise CnnvizError(f"layer {name!r} has channels 0 to {count - 1}, not {wrong[0]}")
    atlas = stats = None
    if data is not None:
        dataset = open_dataset(data)
        if len(dataset) == 0:
            raise CnnvizError("the data holds no images: give a folder of images or a named data set (--data)")
        stats = UnitStats.empty(count)
        atlas = neuron_atlas(handle, module, dataset, top=min(top, len(dataset)), bottom=0, batch_size=batch_size,
                             progress=progress, observe=stats.add)
    drawn = still = made = None
    preset = preset or default_preset()
    if pictures and channels is not None:
        made = torch.zeros(count, dtype=torch.bool)
        made[chosen] = True
    if pictures:
        drawn = unit_pictures(handle, name, chosen, steps=steps, diversity=diversity, preset=preset, seed=seed,
                              batch_size=batch_size, progress=progress).cpu()
        still = torch.zeros(count, dtype=torch.bool)
        still[chosen] = stuck(handle, name, drawn, chosen)
    return LayerSheet(handle.name, weights_digest(handle.model, handle.name), name, count, drawn, atlas, stats,
                      preset, steps, seed, still, made)


def stuck(handle: ModelHandle, layer: str, pictures: torch.Tensor, channels: Sequence[int] | None = None
          ) -> torch.Tensor:
    """Per picture, whether the first of each channel's (``pictures``, ``(n, D, C, S, S)``, of ``channels``, default
    ``0..n-1``) did not move: the channel gives no gradient there (:func:`interpret.optimize.unmoved`), a run of
    consecutive channels that fits at a time."""
    channels = list(range(len(pictures))) if channels is None else [int(c) for c in channels]
    size = auto_batch_size(handle, backward=True, size=pictures.shape[-1])
    found: list[bool] = []
    while len(found) < len(channels):
        start = end = len(found)
        while end - start < size and end < len(channels) and channels[end] == channels[start] + end - start:
            end += 1
        found += [reason is not None for reason in unmoved(handle, f"{layer}:{channels[start]}-{channels[end - 1]}",
                                                           pictures[start:end, 0])]
    return torch.tensor(found, dtype=torch.bool)

