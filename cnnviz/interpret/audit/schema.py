"""``audit.json``, the one schema of an audit, and reading a run folder back (:func:`load`).

``audit.json`` (``"schema": "cnnviz.audit/1"``)::

    model        {"name", "fingerprint"}                 the zoo name and a hash of the weights
    data         {"source", "kind", "items"}             kind: "folder" (ids are paths relative to it, str)
                                                         or "dataset" (ids are indices, int)
    method, layer, map_size [h, w]                       how the maps were made, their stored size
    overall      {"accuracy", "ece", "items"}
    confusion    {"labels": [class], "matrix": [[int]]}  rows = true, columns = predicted; the classes that are
                                                         true or predicted for some item, in the model's order
    calibration  {"bins": [{"lo", "hi", "count", "confidence", "accuracy"}], "ece"}
                                                         top-label reliability; an empty bin's means are null
    mistakes     [{"item", "label", "predicted", "confidence"}]   most confident first
    unsure_correct  [same]                                         least confident first
    classes      {NAME: {"index", "items", "accuracy",
                         "clusters": [{"id", "members": [item], "mean_map": [[float]] (map_size),
                                       "prototypes": [item], "relevance_box": [x0, y0, x1, y1]}],
                         "eigengap": {"k", "eigenvalues"},
                         "embedding": {"members": [item], "xy": [[x, y]], "cluster": [int]},
                         "concepts": [{"id", "importance", "crops": [{"item", "box": [x0, y0, x1, y1]}]}]}}
                                                         boxes are fractions of the image, in [0, 1]
    flags        [{"class", "clusters": [id], "items", "score", "members": [item], "evidence": {...}}]
                                                         highest score first
    threshold    the score above which a flag is raised
    settings     the analysis settings (seed, max_clusters, concepts, bins, examples)

Beside it in the run folder, for browsing (:class:`Audit` reads them): ``items.json``, one row per item (``ids``,
``label``, ``predicted``, ``confidence``, as columns), and ``maps.npy``, every item's downsized map, ``(N, h, w)``
float32, row ``i`` for ``items.ids[i]``, read memory-mapped.

Example:
    >>> audit = Audit.from_json({"schema": SCHEMA, "model": {"name": "m", "fingerprint": "f"},
    ...     "data": {"source": "d", "kind": "dataset", "items": 0}, "method": "gradcam", "layer": None,
    ...     "map_size": [8, 8], "overall": {}, "confusion": {}, "calibration": {}, "mistakes": [],
    ...     "unsure_correct": [], "classes": {}, "flags": [], "threshold": 0.5})
    >>> audit.to_json()["schema"], audit.map_size
    ('cnnviz.audit/1', (8, 8))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.zoo.core import CnnvizError

SCHEMA = "cnnviz.audit/1"
AUDIT_FILE = "audit.json"
ITEMS_FILE = "items.json"
MAPS_FILE = "maps.npy"
ItemId = str | int


@dataclass
class Items:
    """One row per item: what the model said of it. Columns, index-aligned (row ``i`` is map ``i``).

    Attributes:
        ids: item ids (paths relative to the folder, or indices).
        label: true class names.
        predicted: predicted class names.
        confidence: ``(N,)`` the predicted class's probability.

    Example:
        >>> items = Items([0, 1, 2], ["a", "a", "b"], ["a", "b", "b"], np.array([0.9, 0.6, 0.8]))
        >>> items.select(label="a", correct=False).tolist(), items.row(2)
        ([1], 2)
    """

    ids: list[ItemId]
    label: list[str]
    predicted: list[str]
    confidence: np.ndarray

    @cached_property
    def rows(self) -> dict[ItemId, int]:
        """Item id -> row."""
        return {item: r for r, item in enumerate(self.ids)}

    def row(self, item: ItemId) -> int:
        """The row of ``item`` (its map's row in :attr:`Audit.maps`)."""
        if item not in self.rows:
            raise CnnvizError(f"no item {item!r} in this audit")
        return self.rows[item]

    @property
    def correct(self) -> np.ndarray:
        """``(N,)`` bool: predicted == label."""
        return np.array([a == b for a, b in zip(self.label, self.predicted)], dtype=bool)

    def select(self, *, label: str | None = None, predicted: str | None = None, correct: bool | None = None,
               low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """The rows of the items of class ``label`` (None: any), predicted as ``predicted``, right or wrong,
        with confidence in ``[low, high]``, by row."""
        keep = (self.confidence >= low) & (self.confidence <= high)
        if label is not None:
            keep &= np.array([x == label for x in self.label], dtype=bool)
        if predicted is not None:
            keep &= np.array([x == predicted for x in self.predicted], dtype=bool)
        if correct is not None:
            keep &= self.correct == correct
        return np.flatnonzero(keep)

    def to_json(self) -> dict[str, Any]:
        """The columns as ``items.json`` holds them."""
        return {"ids": self.ids, "label": self.label, "predicted": self.predicted,
                "confidence": [float(c) for c in self.confidence]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Items:
        """Read back :meth:`to_json`."""
        return cls(list(data["ids"]), list(data["label"]), list(data["predicted"]),
                   np.asarray(data["confidence"], dtype=np.float64))


@dataclass
class Audit:
    """An audit's results: the fields of ``audit.json`` (see the module docstring), and, when read from a run
    folder, its per-item rows (:attr:`items`) and memory-mapped maps (:attr:`maps`)."""

    model: dict[str, Any]
    data: dict[str, Any]
    method: str
    layer: str | None
    map_size: tuple[int, int]
    overall: dict[str, Any]
    confusion: dict[str, Any]
    calibration: dict[str, Any]
    mistakes: list[dict[str, Any]]
    unsure_correct: list[dict[str, Any]]
    classes: dict[str, dict[str, Any]]
    flags: list[dict[str, Any]]
    threshold: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The ``audit.json`` document."""
        out: dict[str, Any] = {"schema": SCHEMA}
        for f in fields(self):
            if f.name != "run_dir":
                value = getattr(self, f.name)
                out[f.name] = list(value) if f.name == "map_size" else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], run_dir: Path | None = None) -> Audit:
        """An :class:`Audit` from an ``audit.json`` document (its schema checked)."""
        if data.get("schema") != SCHEMA:
            raise CnnvizError(f"not an audit ({SCHEMA}): its schema is {data.get('schema')!r}")
        names = [f.name for f in fields(cls) if f.name != "run_dir"]
        missing = [n for n in names if n not in data and n != "settings"]
        if missing:
            raise CnnvizError(f"the audit lacks {', '.join(missing)}: it was not written by cnnviz audit")
        values = {n: data[n] for n in names if n in data}
        values["map_size"] = tuple(values["map_size"])
        return cls(**values, run_dir=run_dir)

    def _path(self, name: str) -> Path:
        if self.run_dir is None:
            raise CnnvizError("this audit was not read from a run folder: use interpret.audit.load(RUN_DIR)")
        return self.run_dir / name

    @cached_property
    def items(self) -> Items:
        """Every item's id, true class, predicted class and confidence (from ``items.json``)."""
        return Items.from_json(json.loads(self._path(ITEMS_FILE).read_text()))

    @cached_property
    def maps(self) -> np.ndarray:
        """Every item's downsized map, ``(N, h, w)`` float32, memory-mapped read-only: row ``i`` is
        ``items.ids[i]``."""
        return np.load(self._path(MAPS_FILE), mmap_mode="r")

    def map(self, item: ItemId) -> np.ndarray:
        """The downsized map of ``item``, ``(h, w)``."""
        return np.asarray(self.maps[self.items.row(item)])


def load(run_dir: str | Path) -> Audit:
    """The audit a finished run folder holds (``cnnviz audit --out RUN_DIR``, ``interpret.audit(...,
    workdir=RUN_DIR)``), with its items and maps.

    Example:
        >>> load("cnnviz-audit").flags[0]["class"]  # doctest: +SKIP
        'Sandal'
    """
    run_dir = Path(run_dir)
    path = run_dir / AUDIT_FILE
    if not path.is_file():
        raise CnnvizError(f"{run_dir} holds no finished audit ({AUDIT_FILE}): run cnnviz audit --out {run_dir} "
                          "(it resumes an unfinished one)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CnnvizError(f"{path} cannot be read as JSON ({exc})") from None
    return Audit.from_json(data, run_dir)
