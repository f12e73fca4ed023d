"""An audit's run folder: what a killed audit resumes from, and what :func:`interpret.audit.load` reads.

::

    RUN_DIR/run.json        what the maps depend on: the model's and the data's identities, the method, its
                            layer and options, the map size; and the chunk size. A second run with other
                            identities is refused (one line), never mixed in.
    RUN_DIR/maps.npy        (N, h, w) float32, every item's downsized map, memory-mapped (np.lib.format.open_memmap)
    RUN_DIR/chunks/NNNNNN.npz  one per finished chunk: its rows' true class, predicted class and confidence
    RUN_DIR/items.json, RUN_DIR/audit.json   written when every chunk is done (:mod:`.schema`)

A chunk's maps are written into ``maps.npy`` and flushed before its ``.npz`` appears (atomically: complete or
absent), so a chunk counts as done only when both are on disk; a kill in between recomputes that chunk. The folder
is created with the first finished chunk, so a run refused for bad input leaves nothing behind.

Example:
    >>> import tempfile
    >>> spec = {"model": {"name": "m", "fingerprint": "a"}, "data": {"items": 3}, "method": "gradcam",
    ...         "layer": None, "options": {}, "map_size": [2, 2], "chunk": 2}
    >>> run = RunFolder(Path(tempfile.mkdtemp()) / "run", spec)
    >>> run.write_chunk(1, np.ones((1, 2, 2), np.float32), np.array([0]), np.array([1]), np.array([0.7]))
    >>> run.done(), run.chunks
    ({1}, 2)
    >>> RunFolder(run.path, {**spec, "method": "gradient"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: ... holds an audit made with method gradcam, not gradient: ...
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.interpret.audit.schema import AUDIT_FILE, ITEMS_FILE, MAPS_FILE
from cnnviz.zoo.core import CnnvizError, atomic_write, write_json

RUN_FILE = "run.json"
CHUNKS = "chunks"
IDENTITY = ("model", "data", "method", "layer", "options", "map_size")  # what the stored maps depend on


def _differs(key: str, old: Any, new: Any) -> str:
    if key == "model":
        same = old.get("name") == new.get("name")
        return f"another model ({old.get('name')}{', other weights' if same else ''}), not {new.get('name')}"
    if key == "data":
        return f"other data ({old.get('source')}, {old.get('items')} items), not {new.get('source')}"
    if key in ("method", "layer"):
        return f"{key} {old}, not {new}"
    return f"other {key.replace('_', ' ')} ({old}), not {new}"


class RunFolder:
    """The run folder at ``path`` for an audit described by ``spec`` (the ``run.json`` it holds or will hold).

    Opening one that holds another audit (:data:`IDENTITY` differs) raises; one that holds this audit is resumed,
    keeping its own chunk size.
    """

    def __init__(self, path: str | Path, spec: dict[str, Any]) -> None:
        self.path = Path(path)
        self.spec = json.loads(json.dumps(spec))  # plain JSON values, compared as they are stored
        if self.path.exists() and not self.path.is_dir():
            raise CnnvizError(f"{self.path} is a file: give a folder for the audit")
        stored = self._stored()
        if stored is not None:
            for key in IDENTITY:
                if stored.get(key) != self.spec.get(key):
                    made = _differs(key, stored.get(key), self.spec.get(key))
                    raise CnnvizError(f"{self.path} holds an audit made with {made}: give another --out, or delete "
                                      "that folder to start over")
            self.spec["chunk"] = stored["chunk"]
        elif self.path.exists() and any(self.path.iterdir()) and not (self.path / CHUNKS).is_dir():  # ours: being made
            raise CnnvizError(f"{self.path} is a folder of other files, not an audit's run folder: give an empty "
                              "or new folder")
        self.items = int(self.spec["data"]["items"])
        self.chunk = int(self.spec["chunk"])
        self._maps: np.memmap | None = None

    def _stored(self) -> dict[str, Any] | None:
        path = self.path / RUN_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            raise CnnvizError(f"{path} is damaged (not JSON): delete {self.path} to start over") from None

    @property
    def exists(self) -> bool:
        """Whether the folder has been created (its first chunk written)."""
        return (self.path / RUN_FILE).is_file()

    @property
    def chunks(self) -> int:
        """How many chunks the items make."""
        return -(-self.items // self.chunk)

    def rows(self, chunk: int) -> range:
        """The item rows of ``chunk``."""
        return range(chunk * self.chunk, min((chunk + 1) * self.chunk, self.items))

    def create(self) -> None:
        """Make the folder: ``maps.npy`` (written under a temporary name, then renamed), then ``run.json``."""
        if self.exists:
            return
        (self.path / CHUNKS).mkdir(parents=True, exist_ok=True)
        h, w = self.spec["map_size"]
        tmp = self.path / f".{MAPS_FILE}.tmp"
        maps = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.items, h, w))
        maps.flush()
        del maps
        os.replace(tmp, self.path / MAPS_FILE)
        write_json(self.path / RUN_FILE, self.spec)

    def maps(self, mode: str = "r+") -> np.memmap:
        """``maps.npy`` memory-mapped (``r+`` to write chunks, ``r`` to read)."""
        if mode == "r":
            return np.load(self.path / MAPS_FILE, mmap_mode="r")
        if self._maps is None:
            self._maps = np.load(self.path / MAPS_FILE, mmap_mode="r+")
        return self._maps

    def _chunk_path(self, chunk: int) -> Path:
        return self.path / CHUNKS / f"{chunk:06d}.npz"

    def done(self) -> set[int]:
        """The chunks finished."""
        if not self.exists:
            return set()
        return {int(p.stem) for p in (self.path / CHUNKS).glob("*.npz") if p.stem.isdigit()} & set(range(self.chunks))

    def write_chunk(self, chunk: int, maps: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                    confidence: np.ndarray) -> None:
        """Store ``chunk``: its maps into ``maps.npy`` (flushed), then its predictions, atomically."""
        self.create()
        rows = self.rows(chunk)
        stored = self.maps()
        stored[rows.start:rows.stop] = maps
        stored.flush()
        buffer = io.BytesIO()
        np.savez(buffer, labels=labels.astype(np.int64), predicted=predicted.astype(np.int64),
                 confidence=confidence.astype(np.float64))
        atomic_write(self._chunk_path(chunk), lambda f: f.write(buffer.getvalue()))

    def predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item's true class, predicted class and confidence, in item order (every chunk must be done)."""
        parts = []
        for chunk in range(self.chunks):
            with np.load(self._chunk_path(chunk)) as found:
                parts.append((found["labels"], found["predicted"], found["confidence"]))
        labels, predicted, confidence = (np.concatenate(column) for column in zip(*parts))
        return labels, predicted, confidence

    def finished(self) -> dict[str, Any] | None:
        """The ``audit.json`` already written, if any."""
        path = self.path / AUDIT_FILE
        return json.loads(path.read_text()) if path.is_file() and (self.path / ITEMS_FILE).is_file() else None

    def write_results(self, audit: dict[str, Any], items: dict[str, Any]) -> None:
        """``items.json``, then ``audit.json`` (the mark of a finished run)."""
        write_json(self.path / ITEMS_FILE, items)
        write_json(self.path / AUDIT_FILE, audit)
