"""Neuron atlas: for every channel of a layer, the images and patches of a dataset that excite it most.

A channel's response to an image is the maximum of its map; the position of
that maximum is the unit whose receptive field gives the patch. One
streaming pass over the dataset keeps, per channel, the running top-k and
bottom-k (value, dataset index, position) on the device, merged a few
thousand images at a time; nothing about the images is stored. Only afterwards are the winning
images loaded again, to crop the patches. Ties are broken by dataset index,
so the answer does not depend on batch order, and under ``torchrun`` the
shards' top-k merge to exactly the single-process result.

Example:
    >>> import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> atlas = neuron_atlas(handle, "blocks.2", "photos/", top=4)  # doctest: +SKIP
    >>> atlas.top_values.shape  # doctest: +SKIP
    torch.Size([24, 4])
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from interpret.batching import auto_batch_size
from interpret.distributed import Group, agree, current, gather_cat, shard_batches, smallest
from interpret.feature_maps import layer_output
from interpret.guard import preserve
from interpret.receptive_field import Box, ReceptiveField, layer_field
from zoo.errors import CnnvizError, closest
from zoo.handle import ModelHandle, as_handle, match_channels
from zoo.images import IMAGE_SUFFIXES, load_image

DataSource = str | Path | Dataset | torch.Tensor
LAST_INDEX = torch.iinfo(torch.int64).max  # index of the placeholders that fill a top-k before any data
MERGE_COLUMNS = 2048  # images gathered on the device between two top-k merges


# ---------------------------------------------------------------- datasets

class TensorImages(Dataset):
    """Images held in memory, ``(N, C, H, W)`` uint8 or float in [0, 1].

    Batches are sliced in one indexing operation (``__getitems__``), not
    image by image.

    Example:
        >>> data = TensorImages(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
        >>> len(data), data[0].dtype
        (3, torch.float32)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                 classes: Sequence[str] | None = None, description: str = "tensor") -> None:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise CnnvizError(f"images must be (N, 1|3, H, W), got {tuple(images.shape)}")
        self.images, self.labels, self.classes, self.description = images, labels, classes, description

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _float(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._float(self.images[index])

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self._float(self.images[torch.as_tensor(indices)])

    def name(self, index: int) -> str:
        """A short label for image ``index`` (with its class when known)."""
        if self.labels is None:
            return f"#{index}"
        label = int(self.labels[index])
        return f"#{index} {self.classes[label] if self.classes and label < len(self.classes) else label}"


class ImageFiles(Dataset):
    """Every image file under a folder (sub-folders included), in sorted order.

    Example:
        >>> ImageFiles("photos/").name(0)  # doctest: +SKIP
        'cats/chelsea.png'
    """

    def __init__(self, folder: str | Path) -> None:
        self.root = Path(folder)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise CnnvizError(f"the folder {self.root} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.description = str(self.root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_image(self.paths[index])

    def name(self, index: int) -> str:
        """The file's path relative to the folder."""
        return self.paths[index].relative_to(self.root).as_posix()


class ItemImages(Dataset):
    """A user's dataset whose items are images or tuples starting with one (``(image, label)``).

    An image is a ``(C, H, W)`` tensor (float in [0, 1] or uint8), a PIL
    image or an array.
    """

    def __init__(self, dataset: Dataset) -> None:
        if not hasattr(dataset, "__len__"):
            raise CnnvizError("the dataset has no length: the atlas needs a map-style torch Dataset")
        self.dataset = dataset
        self.description = type(dataset).__name__

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> torch.Tensor:
        return as_image(self.dataset[index])

    def name(self, index: int) -> str:
        """``#index``."""
        return f"#{index}"


def as_image(item: Any) -> torch.Tensor:
    """A dataset item as a float ``(C, H, W)`` image in [0, 1] (first element of a tuple)."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise CnnvizError("a dataset item is an empty tuple: expected (image, ...)")
        item = item[0]
    if isinstance(item, torch.Tensor) and item.dtype == torch.uint8:
        item = item.float() / 255.0
    if not isinstance(item, (torch.Tensor, np.ndarray, Image.Image)):
        raise CnnvizError(f"a dataset item is a {type(item).__name__}: expected an image tensor, array or PIL image")
    return load_image(item)


def open_dataset(data: DataSource) -> Dataset:
    """The images of ``data``: a folder, ``"fashion-mnist"`` / ``"mnist"`` (``:train`` or the
    default ``:test`` split), a tensor batch, or a torch Dataset.

    Example:
        >>> len(open_dataset("fashion-mnist"))
        10000
    """
    if isinstance(data, (TensorImages, ImageFiles, ItemImages)):
        return data
    if isinstance(data, torch.Tensor):
        return TensorImages(data)
    if isinstance(data, Dataset):
        return ItemImages(data)
    if not isinstance(data, (str, Path)):
        raise CnnvizError(f"data must be a folder, a dataset name, a tensor or a torch Dataset, "
                          f"got {type(data).__name__}")
    from zoo.datasets import DATASETS, has_idx_files, read_idx_split

    key, _, split = str(data).lower().partition(":")
    if key in DATASETS:
        spec = DATASETS[key]
        if split not in ("", "test", "train"):
            raise CnnvizError(f"unknown split {split!r} of {key}: use {key}:train or {key}:test")
        if not has_idx_files(spec.default_dir):
            raise CnnvizError(f"{spec.name} is not in {spec.default_dir}: {spec.install_hint}")
        split = split or "test"
        tensors = read_idx_split(spec.default_dir, "train" if split == "train" else "t10k")
        return TensorImages(tensors.images, tensors.labels, spec.classes, f"{spec.name}:{split}")
    path = Path(data)
    if path.is_dir():
        return ImageFiles(path)
    if path.exists():
        raise CnnvizError(f"{path} is a file: give a folder of images or a dataset name ({', '.join(DATASETS)})")
    raise CnnvizError(f"no folder or dataset {str(data)!r}: give a folder of images or one of "
                      f"{', '.join(DATASETS)}{closest(key, DATASETS)}")


def image_name(dataset: Dataset, index: int) -> str:
    """A label for item ``index``: its file name, class, or ``#index``."""
    name = getattr(dataset, "name", None)
    return name(index) if callable(name) else f"#{index}"


class Preparer:
    """Turns dataset items into a model-ready CPU batch; a picklable DataLoader ``collate_fn``.

    Images already at the model's input size are used as they are (a
    dataset made for the model, like Fashion-MNIST for a 28 px CNN); others
    go through a CPU copy of the handle's own preprocessing (a handle around
    ``nn.Identity`` with the same input and resize sizes), so loader workers
    resize exactly as ``handle.prepare`` does.
    """

    def __init__(self, handle: ModelHandle) -> None:
        channels = handle.in_channels
        self.shape = (channels, handle.input_size, handle.input_size)
        self.resizer = ModelHandle(nn.Identity(), name="prepare", input_size=handle.input_size,
                                   mean=[0.0] * channels, std=[1.0] * channels, resize_size=handle.resize_size)

    def __call__(self, items: torch.Tensor | list[Any]) -> torch.Tensor:
        if isinstance(items, torch.Tensor) and tuple(items.shape[1:]) == self.shape:
            return items.float()  # a ready batch: nothing to do, in one piece
        images = [match_channels(im.float(), self.shape[0]) for im in items] if isinstance(items, torch.Tensor) \
            else [match_channels(as_image(item), self.shape[0]) for item in items]
        return torch.stack([im if tuple(im.shape) == self.shape else self.resizer.prepare(im)[0] for im in images])


# ---------------------------------------------------------------- the running top-k

@dataclass
class TopK:
    """Per channel, the ``k`` best (value, dataset index, position) seen so far; all ``(C, k)``.

    ``largest=False`` keeps the smallest values (the bottom-k). Ties go to
    the smaller dataset index, whatever the order the data came in.
    """

    values: torch.Tensor
    indices: torch.Tensor
    positions: torch.Tensor
    largest: bool

    @classmethod
    def empty(cls, channels: int, k: int, largest: bool, device: torch.device) -> TopK:
        """``k`` placeholders per channel that any real value displaces."""
        fill = float("-inf") if largest else float("inf")
        return cls(torch.full((channels, k), fill, device=device),
                   torch.full((channels, k), LAST_INDEX, dtype=torch.int64, device=device),
                   torch.zeros(channels, k, dtype=torch.int64, device=device), largest)

    @property
    def k(self) -> int:
        """How many entries each channel keeps."""
        return int(self.values.shape[1])

    def merge(self, values: torch.Tensor, indices: torch.Tensor, positions: torch.Tensor) -> TopK:
        """The top-k of these entries and the new ``(C, n)`` ones."""
        return select(torch.cat([self.values, values], 1), torch.cat([self.indices, indices], 1),
                      torch.cat([self.positions, positions], 1), self.k, self.largest)


def select(values: torch.Tensor, indices: torch.Tensor, positions: torch.Tensor, k: int, largest: bool) -> TopK:
    """The ``k`` best of ``(C, n)`` entries per row, ties to the smaller index (exact, deterministic).

    Example:
        >>> best = select(torch.tensor([[1.0, 3.0, 3.0]]), torch.tensor([[0, 7, 2]]), torch.zeros(1, 3,
        ...               dtype=torch.long), 2, largest=True)
        >>> best.indices.tolist()
        [[2, 7]]
    """
    # NaN would sort above every number; it never wins.
    values = values.nan_to_num(nan=float("-inf") if largest else float("inf"))
    # Two stable sorts: by index, then by value, so equal values stay in index order.
    order = indices.argsort(dim=1, stable=True)
    values, indices, positions = values.gather(1, order), indices.gather(1, order), positions.gather(1, order)
    order = values.argsort(dim=1, descending=largest, stable=True)[:, :k]
    return TopK(values.gather(1, order), indices.gather(1, order), positions.gather(1, order), largest)


# ---------------------------------------------------------------- the pass

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
        bottom_values, bottom_indices, bottom_positions: the same for the
            weakest responses, weakest first.
        field: the layer's receptive field (None when arithmetic cannot give
            it; patches are then whole images).
        field_reason: why ``field`` is None.
        input_size: side of the model's input.
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

    @property
    def channels(self) -> int:
        """Channels of the layer."""
        return int(self.top_values.shape[0])

    @property
    def dead(self) -> list[int]:
        """Channels never positive anywhere on any image of the dataset."""
        return [int(c) for c in (self.top_values[:, 0] <= 0).nonzero().flatten()]

    def box(self, channel: int, rank: int, *, bottom: bool = False, clip: bool = True) -> Box:
        """The input box of the unit behind entry ``rank`` of ``channel`` (clipped to the image
        unless ``clip=False``; the whole image when the field is unknown)."""
        positions = self.bottom_positions if bottom else self.top_positions
        y, x = (int(v) for v in positions[channel, rank])
        if self.field is None:
            return Box(0, 0, self.input_size, self.input_size)
        return self.field.box(y, x, channel=channel, clip=clip)

    def to_dict(self, names: Callable[[int], str] | None = None) -> dict[str, Any]:
        """A JSON-ready index: per channel the top and bottom entries with boxes, and the dead channels."""
        names = names or (lambda i: f"#{i}")

        def entries(c: int, bottom: bool) -> list[dict[str, Any]]:
            values, indices, positions = ((self.bottom_values, self.bottom_indices, self.bottom_positions) if bottom
                                          else (self.top_values, self.top_indices, self.top_positions))
            return [{"index": int(indices[c, r]), "name": names(int(indices[c, r])),
                     "activation": float(values[c, r]), "position": [int(p) for p in positions[c, r]],
                     "box": list(self.box(c, r, bottom=bottom))} for r in range(values.shape[1])]

        field = None if self.field is None else {
            "size": list(self.field.size), "jump": list(self.field.jump), "start": list(self.field.start),
            "offset": list(self.field.offset), "same_for_all_channels": self.field.same_for_all}
        return {"layer": self.layer, "images": self.count, "map_size": list(self.map_size),
                "input_size": self.input_size, "receptive_field": field, "receptive_field_note": self.field_reason,
                "box_format": "[top, left, bottom, right), input pixels of the prepared image",
                "dead_channels": self.dead,
                "channels": [{"channel": c, "top": entries(c, False), "bottom": entries(c, True)}
                             for c in range(self.channels)]}


def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """``items``, produced by a background thread up to ``depth`` ahead.

    Decoding and collating release the GIL for long stretches, so the next
    batch is built while the model computes on this one. An error in the
    thread is raised here; leaving the loop early stops the thread.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put(("error", exc))

    thread = threading.Thread(target=produce, name="atlas-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


def default_workers(dataset: Dataset) -> int:
    """Loader processes: none for data in memory, else up to 4, leaving a core for the model."""
    if isinstance(dataset, TensorImages):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def neuron_atlas(model: nn.Module, layer: str | nn.Module, data: DataSource, *, top: int = 9,
                 bottom: int | None = None, batch_size: int | None = None, workers: int | None = None,
                 progress: bool = True) -> Atlas:
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
    name = next(n for n, m in handle.model.named_modules() if m is module)
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
    with preserve(handle), torch.inference_mode():
        return _stream(handle, module, name, dataset, count, top, bottom, field, reason, group,
                       batch_size, workers, progress)


def _stream(handle: ModelHandle, module: nn.Module, name: str, dataset: Dataset, count: int, top: int,
            bottom: int, field: ReceptiveField | None, reason: str, group: Group, batch_size: int | None,
            workers: int | None, progress: bool) -> Atlas:
    device = handle.device
    probe = _as_maps(layer_output(handle, module, torch.zeros(1, handle.in_channels, handle.input_size,
                                                               handle.input_size, device=device)), name)
    channels, height, width = probe.shape[1:]
    batch_size = smallest(batch_size or auto_batch_size(handle), group)
    batches = shard_batches(count, batch_size, group)
    workers = default_workers(dataset) if workers is None else workers
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=Preparer(handle), num_workers=workers,
                        pin_memory=device.type == "cuda")
    best = TopK.empty(channels, top, True, device)
    worst = TopK.empty(channels, max(bottom, 1), False, device)
    # Batches wait on the device and are merged a few thousand columns at a time: two sorts per
    # merge, so merging every small batch would cost more than the spatial max itself.
    pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    flush_at = max(MERGE_COLUMNS, 4 * top)

    def flush() -> None:
        nonlocal best, worst
        if pending:
            values, indices, positions = (torch.cat(parts, dim=1) for parts in zip(*pending))
            best = best.merge(values, indices, positions)
            if bottom:
                worst = worst.merge(values, indices, positions)
            pending.clear()

    bar = tqdm(total=len(batches), desc=f"atlas {name}", unit="batch", leave=False,
               disable=not progress or not group.leader or len(batches) < 5)
    stream = prefetch(iter(loader))
    try:
        for rows, images in zip(batches, stream):
            maps = _as_maps(layer_output(handle, module, images.to(device, non_blocking=True)), name)
            values, positions = maps.flatten(2).max(dim=2)  # (B, C); the first maximum on ties
            # Batches are index ranges: arange on the device, no host-to-device copy to wait for.
            indices = torch.arange(rows[0], rows[-1] + 1, device=device).expand(channels, -1)
            pending.append((values.T, indices, positions.T))
            if len(pending) * len(rows) >= flush_at:
                flush()
            bar.update()
        flush()
    finally:
        stream.close()
        bar.close()
    best, worst = _merge_ranks(best, group), _merge_ranks(worst, group)

    def yx(flat: torch.Tensor) -> torch.Tensor:
        return torch.stack([flat // width, flat % width], dim=-1).cpu()

    return Atlas(name, count, (int(height), int(width)), best.values.float().cpu(), best.indices.cpu(),
                 yx(best.positions), worst.values[:, :bottom].float().cpu(), worst.indices[:, :bottom].cpu(),
                 yx(worst.positions[:, :bottom]), field, reason, handle.input_size)


def _as_maps(output: torch.Tensor, name: str) -> torch.Tensor:
    if output.dim() == 2:  # flat features: one unit per channel that sees the whole image
        return output[:, :, None, None]
    if output.dim() != 4:
        raise CnnvizError(f"layer {name!r} outputs shape {tuple(output.shape)}: the atlas needs (B, C, H, W) "
                          "maps or (B, C) features")
    return output


def _merge_ranks(best: TopK, group: Group) -> TopK:
    if group.world == 1:
        return best
    return select(gather_cat(best.values, group, 1), gather_cat(best.indices, group, 1),
                  gather_cat(best.positions, group, 1), best.k, best.largest)


# ---------------------------------------------------------------- patches

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
