"""A layer's neuron atlas over ``--data`` as a job: the top-activating items of every channel, found by
:func:`interpret.inside.neuron_atlas` over the data set a chunk per round (so progress shows and a cancel
stops it), merged exactly as the atlas merges its batches, then kept in the cache folder so a restarted server
reuses it. The file is written once, atomically, when every chunk is done: a cancel or a shutdown leaves none.

Example:
    >>> import tempfile, torch
    >>> from cnnviz import zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle, queue = zoo.load("fashion_cnn", device="cpu"), ComputeQueue("cpu")
    >>> path = Path(tempfile.mkdtemp()) / "atlas.npz"
    >>> job = AtlasJob(handle, "features.block1", torch.rand(10, 1, 28, 28), path, top=3, chunk=4)
    >>> job.start(queue).result(); job.state, job.step, path.exists()
    ('done', 10, True)
    >>> load_atlas(handle, "features.block1", path).top_indices.shape
    torch.Size([16, 3])
    >>> queue.close()
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from cnnviz import zoo
from cnnviz.explorer.jobs import ROUND_SECONDS, Job
from cnnviz.interpret.inside import Atlas, TopK, UnitStats, layer_field, neuron_atlas
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.data import DataSource, open_dataset

TOP = 9  # patches shown per unit
CHUNK = 8  # items in the first round (small: a big model on a CPU must not hold the queue); later rounds take about
# ROUND_SECONDS (long enough to repay a round's setup, short enough for a request made meanwhile)
MAX_CHUNK = 16384
PACE: dict[tuple[str, str], float] = {}  # seconds per item measured by the atlas jobs run so far, by (model, layer)
GUESSES: dict[tuple[str, str], float] = {}  # seconds per item estimated before any job, by (model, layer)
PROBE = 16  # items scanned to estimate a scan's pace before any job has measured it


class AtlasJob(Job):
    """The top-``top`` items of every channel of ``layer`` over ``data``, written to ``path`` when complete."""

    kind = "atlas"

    def __init__(self, handle: ModelHandle, layer: str, data: DataSource, path: Path, *, top: int = TOP,
                 chunk: int = CHUNK) -> None:
        handle.layer(layer)
        self.dataset = open_dataset(data)
        super().__init__(len(self.dataset), chunk)
        self.handle, self.layer, self.path = handle, layer, Path(path)
        self.top = min(top, len(self.dataset))
        self.best: TopK | None = None
        self.map_size = (0, 0)
        self.atlas: Atlas | None = None
        self.stats: UnitStats | None = None  # gathered in the same pass when set (a layer sheet's statistics)
        self.scanned = 0  # items merged so far
        self._field: tuple[Any, str] | None = None  # the layer's receptive field, once asked for

    def advance(self) -> int:
        rows = range(self.scanned, min(self.scanned + self.round_steps, len(self.dataset)))
        start = time.perf_counter()
        part = neuron_atlas(self.handle, self.layer, Subset(self.dataset, rows), top=min(self.top, len(rows)),
                            bottom=0, workers=0, progress=False, observe=None if self.stats is None else self.stats.add)
        seconds = time.perf_counter() - start
        PACE[self.handle.name, self.layer] = seconds / len(rows)
        self.round_steps = max(1, min(MAX_CHUNK, int(len(rows) * ROUND_SECONDS / max(seconds, 1e-3))))
        self.map_size = part.map_size
        flat = part.top_positions[..., 0] * part.map_size[1] + part.top_positions[..., 1]
        if self.best is None:
            self.best = TopK.empty(part.channels, self.top, True, torch.device("cpu"))
        self.best = self.best.merge(part.top_values, part.top_indices + rows.start, flat, part.top_ties)
        self.scanned += len(rows)
        return len(rows)

    def completed(self) -> None:
        self.atlas = self.current()
        keep_atlas(self.path, self.atlas)

    def current(self) -> Atlas | None:
        """The atlas of the items scanned so far (None before the first round): what a page shows while the scan
        goes on."""
        best = self.best
        if best is None:
            return None
        k = min(best.k, self.scanned)  # fewer items seen than kept: the placeholders are not entries
        positions = torch.stack([best.positions // self.map_size[1], best.positions % self.map_size[1]], -1)[:, :k]
        if self._field is None:
            self._field = layer_field(self.handle, self.layer)
        return Atlas.from_top_arrays(self.layer, {"values": best.values[:, :k].numpy(),
                                                  "indices": best.indices[:, :k].numpy(),
                                                  "positions": positions.numpy(), "map_size": np.array(self.map_size),
                                                  "count": np.array(self.scanned), "ties": best.ties[:, :k].numpy()},
                                     *self._field, self.handle.input_size)

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer, "model": self.handle.name}


def scan_cost(handle: ModelHandle, layer: str, data: DataSource) -> dict[str, Any]:
    """What scanning ``data`` for the atlas of ``layer`` would take: ``items`` x ``seconds_per_item`` =
    ``seconds``; the pace is ``measured`` by an earlier atlas job of the layer, else estimated once by scanning
    :data:`PROBE` items (a call's fixed cost weighs more on a few items than on the job's rounds: an upper
    estimate). Runs torch: call it on the compute queue.

    Example:
        >>> from cnnviz import zoo
        >>> cost = scan_cost(zoo.load("fashion_cnn", device="cpu"), "features.block2", torch.rand(40, 1, 28, 28))
        >>> cost["items"], cost["seconds"] == round(40 * cost["seconds_per_item"], 1)
        (40, True)
    """
    dataset = open_dataset(data)
    measured = (handle.name, layer) in PACE
    if not measured and (handle.name, layer) not in GUESSES:
        probe = Subset(dataset, range(min(PROBE, len(dataset))))
        start = time.perf_counter()
        neuron_atlas(handle, layer, probe, top=1, bottom=0, workers=0, progress=False)
        GUESSES[handle.name, layer] = (time.perf_counter() - start) / len(probe)
    pace = PACE[handle.name, layer] if measured else GUESSES[handle.name, layer]
    return {"items": len(dataset), "seconds_per_item": pace, "seconds": round(len(dataset) * pace, 1),
            "measured": measured}


def keep_atlas(path: Path, atlas: Atlas) -> Path:
    """Write ``atlas``'s top entries to ``path`` atomically (:func:`load_atlas` reads them)."""
    return zoo.atomic_write(path, lambda file: np.savez(file, **atlas.top_arrays()))


def load_atlas(handle: ModelHandle, layer: str, path: Path) -> Atlas:
    """The atlas kept at ``path`` (top entries only), with the layer's receptive field for the patch boxes."""
    with np.load(path, allow_pickle=False) as kept:
        arrays = dict(kept)
    field, reason = layer_field(handle, layer)
    return Atlas.from_top_arrays(layer, arrays, field, reason, handle.input_size)
