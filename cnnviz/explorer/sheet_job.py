"""A layer sheet as a job (:func:`interpret.layer_sheet` in rounds): first the feature visualizations of every
channel (one run of the engine, :func:`interpret.optimize.unit_pictures`, parked between rounds by
:class:`~cnnviz.explorer.stepped.Stepped`), then the atlas scan of ``--data`` a chunk per round with the
statistics gathered in the same pass (:class:`~cnnviz.explorer.atlas_job.AtlasJob`'s rounds). What is made so far
is readable while it runs (:attr:`SheetJob.pictures`, :meth:`SheetJob.current`), so a page fills in as it arrives.
When every round is done, the sheet is written once, atomically, under the weights' and the data's identity
(:func:`sheet_key`), with the layer's atlas beside it.

Example:
    >>> import tempfile, torch
    >>> from cnnviz import zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle, queue = zoo.load("fashion_cnn", device="cpu"), ComputeQueue("cpu")
    >>> folder = Path(tempfile.mkdtemp())
    >>> job = SheetJob(handle, "features.block1", torch.rand(10, 1, 28, 28), folder / "sheet.npz",
    ...                folder / "atlas.npz", top=3, steps=4)
    >>> job.start(queue).result(); job.state, (folder / "sheet.npz").exists()
    ('done', True)
    >>> sheet = load_sheet(handle, folder / "sheet.npz")
    >>> sheet.pictures.shape, sheet.atlas.count, sheet.stats.entries
    (torch.Size([16, 1, 1, 28, 28]), 10, 1960)
    >>> queue.close()
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnviz import zoo
from cnnviz.explorer.atlas_job import CHUNK, TOP, AtlasJob, keep_atlas
from cnnviz.explorer.identity import data_identity, model_identity, result_key
from cnnviz.explorer.jobs import ROUND_SECONDS
from cnnviz.explorer.stepped import Stepped
from cnnviz.interpret.core import auto_batch_size, weights_digest
from cnnviz.interpret.inside import (SHEET_STEPS, Dissection, LayerSheet, UnitStats, layer_channels, layer_sheet,
                                     load_sheet, stuck)
from cnnviz.interpret.optimize import default_preset, unit_pictures
from cnnviz.zoo.data import DataSource, open_dataset
from cnnviz.zoo.handle import ModelHandle

STEPS = SHEET_STEPS  # optimizer steps of each channel's picture in a sheet the explorer makes
PICTURE_ROUND = 16  # engine steps a round (or ROUND_SECONDS, whichever comes first)
SHEETS_DIR = "sheets"  # the cache folder's subfolder of sheets
DISSECTIONS_DIR = "dissection"  # ... and of dissections (labels of units), kept by cnnviz microscope --dissection


def sheet_key(model: str, layer: str, data: str | None, *, top: int = TOP, steps: int = STEPS, diversity: int = 1,
              preset: str | None = None, seed: int = 0) -> tuple[Any, ...]:
    """What a kept sheet is named by: the model's weights (``model``: :func:`explorer.identity.model_identity`),
    the layer, the data's identity (None: no data) and how the sheet is made (the preset included, so a new default
    preset makes new pictures). ``cnnviz microscope --cache`` and the explorer name sheets alike, so either reuses
    the other's.

    Example:
        >>> sheet_key("abc", "features.block2", None) == sheet_key("abc", "features.block2", None, steps=STEPS)
        True
    """
    return ("sheet", model, layer, data, top, steps, diversity, preset or default_preset(), seed)


def sheet_file(cache: Path, key: tuple[Any, ...]) -> Path:
    """The file of the sheet named by ``key`` (:func:`sheet_key`) in the cache folder ``cache``."""
    return Path(cache) / SHEETS_DIR / f"{result_key(*key)}.npz"


def cached_sheet(handle: ModelHandle, layer: str, data: DataSource | None = None, *, cache: Path | None = None,
                 top: int = TOP, steps: int = STEPS, diversity: int = 1, preset: str | None = None, seed: int = 0,
                 progress: bool = False) -> LayerSheet:
    """:func:`interpret.layer_sheet`, kept in the folder ``cache`` (None: not kept) under the weights' and the
    data's identity and the settings: a later call, or the explorer serving with ``--cache`` the same folder,
    reuses it; changed weights make a new one.

    Example:
        >>> import tempfile
        >>> from cnnviz import zoo
        >>> handle, folder = zoo.load("fashion_cnn", device="cpu"), Path(tempfile.mkdtemp())
        >>> first = cached_sheet(handle, "features.block1", torch.rand(6, 1, 28, 28), cache=folder, steps=2, top=2)
        >>> again = cached_sheet(handle, "features.block1", torch.rand(6, 1, 28, 28), cache=folder, steps=2, top=2)
        >>> len(list(folder.rglob("*.npz")))  # other data: another sheet
        2
    """
    dataset = None if data is None else open_dataset(data)
    make = lambda: layer_sheet(handle, layer, dataset, top=top, steps=steps, diversity=diversity, preset=preset,
                               seed=seed, progress=progress)
    if cache is None:
        return make()
    identity = None if data is None else data_identity(data, dataset)
    top = top if dataset is None else min(top, len(dataset))
    path = sheet_file(cache, sheet_key(model_identity(handle), layer, identity, top=top, steps=steps,
                                       diversity=diversity, preset=preset, seed=seed))
    if path.exists():
        return load_sheet(handle, path)
    sheet = make()
    keep_sheet(path, sheet)
    return sheet


def dissection_file(cache: Path, model: str, layer: str) -> Path:
    """Where the cache folder keeps the dissection of ``layer`` for the weights ``model`` (their identity)."""
    return Path(cache) / DISSECTIONS_DIR / f"{result_key('dissection', model, layer)}.json"


def kept_dissection(handle: ModelHandle, path: Path) -> Dissection | None:
    """The dissection kept at ``path`` when there is one for these weights, else None (a stale one is not
    shown)."""
    if not path.exists():
        return None
    found = Dissection.from_json(path.read_text())
    return found if found.made_by(handle) else None


def keep_sheet(path: Path, sheet: LayerSheet) -> Path:
    """Write ``sheet`` to ``path`` atomically."""
    return zoo.atomic_write(path, lambda file: np.savez(file, **sheet.to_arrays()))


class SheetJob(AtlasJob):
    """The sheet of ``layer``: every channel's picture (``steps`` steps), then, with ``data``, the top-``top``
    items and the statistics of every channel; written to ``path`` (and the atlas to ``atlas_path``) when done."""

    kind = "sheet"

    def __init__(self, handle: ModelHandle, layer: str, data: DataSource | None, path: Path,
                 atlas_path: Path | None = None, *, top: int = TOP, steps: int = STEPS, diversity: int = 1,
                 first: list[int] | None = None, chunk: int = CHUNK) -> None:
        channels = layer_channels(handle, layer)  # refuses a layer of one channel
        empty = torch.empty(0, handle.in_channels, handle.input_size, handle.input_size)
        super().__init__(handle, layer, empty if data is None else data, path, top=top, chunk=chunk)
        self.scan_path, self.channels, self.picture_steps, self.diversity = atlas_path, channels, steps, diversity
        self.stats = UnitStats.empty(channels) if data is not None else None
        self.preset = default_preset()
        self.pictures: torch.Tensor | None = None  # (channels, diversity, C, S, S) once made
        self.ready: dict[int, torch.Tensor] = {}  # pictures finished so far, by channel
        first = [c for c in dict.fromkeys(first or []) if 0 <= c < channels]
        self.order = first + [c for c in range(channels) if c not in set(first)]  # the channels a page shows first
        self.sheet: LayerSheet | None = None
        jobs = channels * diversity
        # On a CPU the time grows with the rows, so the channels a page shows go first in a smaller wave (their
        # pictures come after one run's steps, not after the whole layer's; a sixteenth of a full batch at least, so
        # a small model does not pay a step's fixed cost many times over); a GPU takes the layer in full batches.
        full = auto_batch_size(handle, backward=True)
        fits = max(len(first) * diversity, full // 16) if first and handle.device.type == "cpu" else None
        rows = min(jobs, max(diversity, (fits or full) // diversity * diversity))
        self.engine_steps = steps * math.ceil(jobs / rows)  # every row runs its steps, wave after wave
        self.steps = self.engine_steps + len(self.dataset)
        self.run = Stepped(lambda: unit_pictures(handle, layer, self.order, steps=steps, diversity=diversity,
                                                 preset=self.preset, batch_size=fits, progress=False,
                                                 made=self._made),
                           handle, round_steps=PICTURE_ROUND, round_seconds=ROUND_SECONDS, total=self.engine_steps)

    def advance(self) -> int:
        if self.pictures is None:
            before = min(self.run.steps, self.engine_steps - 1)
            if self.run.round():
                self.pictures = torch.empty_like(self.run.result, device="cpu")
                self.pictures[self.order] = self.run.result.detach().cpu()
                return self.engine_steps - before
            return min(self.run.steps, self.engine_steps - 1) - before  # the last step counts once they are made
        return super().advance() if self.scanned < len(self.dataset) else 0

    def _made(self, places: list[int], pictures: torch.Tensor) -> None:
        self.ready.update({self.order[p]: picture for p, picture in zip(places, pictures)})

    def picture(self, channel: int) -> torch.Tensor | None:
        """Channel ``channel``'s pictures ``(diversity, C, S, S)`` once made (before the others are)."""
        return self.pictures[channel] if self.pictures is not None else self.ready.get(channel)

    def completed(self) -> None:
        self.atlas = self.current() if len(self.dataset) else None
        if self.atlas is not None and self.scan_path is not None:
            keep_atlas(self.scan_path, self.atlas)
        self.sheet = LayerSheet(self.handle.name, weights_digest(self.handle.model, self.handle.name), self.layer,
                                self.channels, self.pictures, self.atlas, self.stats, self.preset, self.picture_steps,
                                still=stuck(self.handle, self.layer, self.pictures))
        keep_sheet(self.path, self.sheet)

    def ended(self) -> None:
        self.run.stop()

    def describe(self) -> dict[str, Any]:
        """The layer, and how far each part is: ``pictures`` made or not, ``scanned`` of ``items``."""
        return {"layer": self.layer, "model": self.handle.name, "pictures": self.pictures is not None,
                "scanned": self.scanned, "items": len(self.dataset)}
