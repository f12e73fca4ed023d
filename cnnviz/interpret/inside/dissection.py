"""Network dissection (Bau et al., CVPR 2017): a word for each unit of a layer, from segmentation masks.

The protocol, for each unit ``k`` of the layer, over a data set of images with concept masks
(:class:`zoo.data.MaskedImages`):

1. the threshold ``T_k``: the value the unit's activations exceed at the top ``quantile`` (0.5 %) of all
   positions of all images, at the layer's own resolution; exact, streamed in one pass without keeping the
   maps (:class:`~interpret.inside.top_quantile.TopQuantile`, equal to ``numpy.quantile(values, 1 - q)``);
2. in a second pass, each image's map upsampled bilinearly (``align_corners=False``) to its mask's size and
   thresholded: ``M_k = S_k > T_k`` (strictly above, so a unit that is mostly 0 marks only where it fires);
3. ``IoU(k, c) = sum |M_k & L_c| / sum |M_k | L_c|``, intersections and unions summed over the data set;
4. the unit's label is the concept of highest IoU (ties: the first concept); it is a detector from
   ``IoU >= detector_iou`` (0.04).

Images that are not at the model's input size are resized whole (not centre-cropped), so the layer's map
covers the whole image and its mask. A concept the masks never mark is skipped (with a note), never divided by.

Example:
    >>> from cnnviz import zoo
    >>> found = dissect(zoo.load("fashion_seg", device="cpu"), "features.3", "fashion-scenes:40",
    ...                 progress=False)  # doctest: +NEEDS_FASHION_MNIST
    >>> len(found.units), found.threshold.quantile  # doctest: +NEEDS_FASHION_MNIST
    (32, 0.005)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.core.batching import auto_batch_size
from cnnviz.interpret.core.distributed import Group, shard_batches
from cnnviz.interpret.core.fingerprint import weights_digest
from cnnviz.interpret.inside.atlas.feed import Preparer, default_workers, prefetch
from cnnviz.interpret.inside.top_quantile import TopQuantile
from cnnviz.interpret.inside.unit_labels import Dissection, Threshold, UnitLabel
from cnnviz.interpret.inside.up_to_layer import layer_runner
from cnnviz.zoo.core import (CnnvizError, NonNegativeInt, OpenUnitInterval, PositiveInt, UnitInterval, check_call,
                             preserve)
from cnnviz.zoo.data import MaskedImages, Scenes, open_masked
from cnnviz.zoo.handle import ModelHandle, as_handle, layer_name

CHUNK = 1 << 22  # upsampled activations thresholded at once
RUNNERS_UP = 2


def dissect(model: nn.Module, layer: str | nn.Module, data: MaskedImages | Scenes | str | Path, *,
            masks: str | Path | None = None, quantile: OpenUnitInterval = 0.005, detector_iou: UnitInterval = 0.04,
            batch_size: PositiveInt | None = None, workers: NonNegativeInt | None = None,
            progress: bool = True) -> Dissection:
    """Label every unit of ``layer`` with the concept its top activations overlap best (network dissection).

    Two passes over the data in batches on the model's device: one for each unit's threshold, one for its
    overlaps with the concepts. The model and the global RNG are left as they were.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        layer: a layer with spatial maps ``(B, C, H, W)`` and at least two channels (dotted name or module).
        data: images with masks: a folder (``images/`` with ``masks/`` beside it), ``fashion-scenes[:COUNT]``,
            :class:`zoo.data.Scenes` or :class:`zoo.data.MaskedImages` (see :func:`zoo.data.open_masked`).
        masks: the masks folder, when not beside the images.
        quantile: the top fraction of each unit's activations (all positions of all images) that counts as
            the unit firing.
        detector_iou: the IoU from which a unit counts as a detector of its concept.
        batch_size: images per forward pass (default: automatic).
        workers: DataLoader processes (default: none for data in memory, else up to 4).
        progress: show progress bars.

    Returns:
        A :class:`Dissection`, one label per channel.
    """
    check_call(dissect, {"quantile": quantile, "detector_iou": detector_iou, "batch_size": batch_size,
                         "workers": workers})
    handle = as_handle(model)
    module = handle.layer(layer)
    name = layer_name(handle.model, module)
    dataset = open_masked(data, masks, size=handle.input_size)
    count = len(dataset)
    if count == 0:
        raise CnnvizError(f"{dataset.description} holds no images: dissection needs images with masks")
    with preserve(handle), torch.inference_mode():
        channels, height, width = _map_shape(handle, module, name)
        batch = batch_size or auto_batch_size(handle)
        feed = _Feed(handle, shard_batches(count, batch, Group()),
                     default_workers(dataset) if workers is None else workers, progress, name)
        forward = layer_runner(handle, module, 2 * count, batch)
        top = TopQuantile(channels, count * height * width, quantile, handle.device)
        for images, _ in feed(dataset.without_masks(), "thresholds"):
            maps = _as_maps(forward(images), name)
            top.add(maps.transpose(0, 1).reshape(channels, -1))
        thresholds = top.value().float()  # the float32 value the maps are compared with is the one recorded
        if not bool(torch.isfinite(thresholds).all()):
            bad = [int(u) for u in (~torch.isfinite(thresholds)).nonzero().flatten()[:5]]
            raise CnnvizError(f"layer {name!r} gives NaN or infinite activations (units {bad}): check the model's "
                              "weights")
        overlaps = _Overlaps(channels, len(dataset.concepts), thresholds.to(handle.device))
        for images, found in feed(dataset, "overlaps"):
            overlaps.add(_as_maps(forward(images), name), found)
    return _labels(handle, name, dataset, (height, width), Threshold(quantile, tuple(thresholds.tolist())),
                   overlaps, detector_iou)


Masks = torch.Tensor | list[torch.Tensor] | None


class _Collate:
    """A DataLoader ``collate_fn``: images prepared whole (no crop), masks stacked when they share a size (a
    list when they do not; None for a pass without masks)."""

    def __init__(self, handle: ModelHandle) -> None:
        self.prepare = Preparer(handle, crop=False)

    def __call__(self, items: tuple[torch.Tensor, torch.Tensor | None] | list[tuple[torch.Tensor, torch.Tensor | None]]
                 ) -> tuple[torch.Tensor, Masks]:
        if isinstance(items, tuple):  # an in-memory batch, sliced in one piece
            return self.prepare(items[0]), items[1]
        images = self.prepare([image for image, _ in items])
        masks = [mask for _, mask in items if mask is not None]
        if not masks:
            return images, None
        return images, torch.stack(masks) if all(m.shape == masks[0].shape for m in masks) else masks


class _Feed:
    """A data set's batches on the device (prepared ahead in a thread or loader processes), once per pass."""

    def __init__(self, handle: ModelHandle, batches: list[list[int]], workers: int, progress: bool,
                 name: str) -> None:
        self.handle, self.batches, self.workers, self.progress, self.name = handle, batches, workers, progress, name

    def __call__(self, dataset: Dataset, stage: str) -> Iterator[tuple[torch.Tensor, Masks]]:
        device = self.handle.device
        # A generator of its own: a DataLoader otherwise draws its workers' base seed from the global RNG.
        loader = DataLoader(dataset, batch_sampler=self.batches, collate_fn=_Collate(self.handle),
                            num_workers=self.workers, pin_memory=device.type == "cuda", generator=torch.Generator())
        bar = tqdm(total=len(self.batches), desc=f"dissect {self.name}: {stage}", unit="batch", leave=False,
                   disable=not self.progress or len(self.batches) < 5)
        stream = prefetch(iter(loader))
        try:
            for images, masks in stream:
                yield images.to(device, non_blocking=True), masks
                bar.update()
        finally:
            stream.close()
            bar.close()


class _Overlaps:
    """Per unit and concept, intersections summed over the data set; per unit and per concept, areas."""

    def __init__(self, channels: int, concepts: int, thresholds: torch.Tensor) -> None:
        device = thresholds.device
        self.thresholds = thresholds
        self.intersection = torch.zeros(channels, concepts, dtype=torch.float64, device=device)
        self.unit_area = torch.zeros(channels, dtype=torch.float64, device=device)
        self.concept_area = torch.zeros(concepts, dtype=torch.float64, device=device)

    def add(self, maps: torch.Tensor, masks: Masks) -> None:
        """A batch of maps ``(B, C, h, w)`` and its masks (stacked, or a list when their sizes differ)."""
        if masks is None:
            raise CnnvizError("a batch came without its masks")  # a programming error, not the user's
        if isinstance(masks, torch.Tensor):
            self._add(maps, masks.to(maps.device))
        else:
            for row, mask in enumerate(masks):
                self._add(maps[row:row + 1], mask[None].to(maps.device))

    def _add(self, maps: torch.Tensor, masks: torch.Tensor) -> None:
        labels = masks.dim() == 3  # (B, H, W) label maps, else (B, K, H, W) stacks
        size = masks.shape[-2:]
        pixels = size[0] * size[1]
        concepts = len(self.concept_area)
        if labels:
            self.concept_area += torch.bincount(masks.flatten(), minlength=concepts + 1)[1:]
        else:
            self.concept_area += masks.sum(dim=(0, 2, 3))
        # A bilinear value never exceeds the largest of the four it mixes: an (image, unit) pair whose map stays
        # below the threshold (with a margin for rounding) fires nowhere, and most pairs do at the top 0.5 %.
        peaks = maps.flatten(2).amax(dim=2)
        rows, units = (peaks >= self.thresholds - 1e-4 * (1 + self.thresholds.abs())).nonzero(as_tuple=True)
        step = max(1, CHUNK // (pixels * (1 if labels else concepts)))
        for start in range(0, len(rows), step):
            row, unit = rows[start:start + step], units[start:start + step]
            up = F.interpolate(maps[row, unit][:, None].float(), size=size, mode="bilinear", align_corners=False)
            fired = up[:, 0] > self.thresholds[unit, None, None]
            if labels:  # counts per (unit, label value), 0 (no concept) included: their sum is the unit's area
                pair, y, x = fired.nonzero(as_tuple=True)
                keys = unit[pair] * (concepts + 1) + masks[row[pair], y, x]
                counts = torch.bincount(keys, minlength=len(self.unit_area) * (concepts + 1))
                counts = counts.view(len(self.unit_area), concepts + 1)
                self.intersection += counts[:, 1:]
                self.unit_area += counts.sum(dim=1)
            else:
                kind = torch.float32 if pixels <= 1 << 24 else torch.float64  # exact counts
                flat = fired.flatten(1).to(kind)
                overlap = torch.bmm(masks[row].flatten(2).to(kind), flat[:, :, None])[:, :, 0]
                self.intersection.index_add_(0, unit, overlap.double())
                self.unit_area.index_add_(0, unit, flat.sum(dim=1).double())

    def ious(self) -> torch.Tensor:
        """``(units, concepts)`` IoU on the CPU; 0 where the union is empty."""
        union = self.unit_area[:, None] + self.concept_area[None, :] - self.intersection
        return torch.where(union > 0, self.intersection / union.clamp(min=1), torch.zeros_like(union)).cpu()


def _labels(handle: ModelHandle, name: str, dataset: MaskedImages, map_size: tuple[int, int], threshold: Threshold,
            overlaps: _Overlaps, detector_iou: float) -> Dissection:
    """Each unit's best concept among those with pixels, and the notes about what was left out."""
    present = (overlaps.concept_area > 0).cpu()
    if not bool(present.any()):
        raise CnnvizError(f"the masks of {dataset.description} mark no concept anywhere (every pixel is 0): "
                          "nothing to dissect against")
    concepts = tuple(c for c, keep in zip(dataset.concepts, present.tolist()) if keep)
    skipped = tuple(c for c, keep in zip(dataset.concepts, present.tolist()) if not keep)
    ious = overlaps.ious()[:, present]
    order = torch.sort(ious, dim=1, descending=True, stable=True).indices
    units = []
    for channel in range(ious.shape[0]):
        ranked = [(concepts[int(k)], float(ious[channel, k])) for k in order[channel, :RUNNERS_UP + 1]]
        best, value = ranked[0]
        units.append(UnitLabel(channel, best if value > 0 else None, value, value > 0 and value >= detector_iou,
                               tuple((c, v) for c, v in ranked[1:] if v > 0)))
    notes = [f"concept {c!r} has no pixels in the masks: skipped" for c in skipped]
    silent = [int(c) for c in (overlaps.unit_area == 0).nonzero().flatten()]
    if silent:
        notes.append(f"{len(silent)} unit(s) never exceed their threshold (dead or constant), no concept: "
                     f"{silent[:20]}{' ...' if len(silent) > 20 else ''}")
    return Dissection(layer=name, model=handle.name, fingerprint=weights_digest(handle.model, handle.name),
                      data=dataset.description, images=len(dataset), map_size=map_size, concepts=concepts,
                      detector_iou=detector_iou, threshold=threshold, units=units, skipped=skipped, notes=tuple(notes))


def _map_shape(handle: ModelHandle, module: nn.Module, name: str) -> tuple[int, int, int]:
    """The layer's ``(channels, h, w)``, refusing what dissection cannot label."""
    probe = layer_output(handle, module, torch.zeros(1, handle.in_channels, handle.input_size, handle.input_size,
                                                     device=handle.device))
    if probe.dim() != 4:
        raise CnnvizError(f"layer {name!r} outputs shape {tuple(probe.shape)}: dissection needs spatial maps "
                          "(B, C, H, W); pick a conv layer (list: cnnviz layers MODEL)")
    if probe.shape[1] < 2:
        raise CnnvizError(f"layer {name!r} has one channel: dissection labels the units of a feature layer; "
                          "pick a layer with several channels (list: cnnviz layers MODEL)")
    return int(probe.shape[1]), int(probe.shape[2]), int(probe.shape[3])


def _as_maps(output: torch.Tensor, name: str) -> torch.Tensor:
    if output.dim() != 4:
        raise CnnvizError(f"layer {name!r} outputs shape {tuple(output.shape)}: dissection needs (B, C, H, W) maps")
    return output
