"""The training log: what ``cnnviz train`` writes as ``NAME-log.json``, as one dataclass.

The format is defined here and nowhere else: the CLI writes it with
:meth:`TrainingLog.write`, the zoo (``fashion_cnn``, run folders) and the gallery
read it with :meth:`TrainingLog.read`. The JSON keeps the field names and
nesting below, so logs written before this module read unchanged.

Example:
    >>> from cnnviz.zoo.fashion import fashion_log_path
    >>> log = TrainingLog.read(fashion_log_path())
    >>> log.spec.arch, log.test.accuracy >= 0.93, log.classes[0]
    ('tutorial_cnn', True, 'T-shirt/top')
    >>> TrainingLog.from_json(log.to_json()) == log
    True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.zoo.cnns import CnnSpec
from cnnviz.zoo.diagnostics import (
    ActivationStats,
)
from cnnviz.zoo.errors import CnnvizError
from cnnviz.zoo.images import atomic_write
from cnnviz.zoo.jsonfile import dumps


@dataclass(frozen=True)
class DatasetSizes:
    """The dataset a run used and how many images each split held."""

    name: str
    train: int
    validation: int
    test: int = 0


@dataclass(frozen=True)
class Normalization:
    """Per-channel statistics the network normalizes with, and where they came from."""

    mean: list[float]
    std: list[float]
    source: str = "training split"  # JSON key "from"


@dataclass(frozen=True)
class HeldOut:
    """The one evaluation on held-out data at the end of a run."""

    split: str
    accuracy: float
    loss: float
    examples: int


@dataclass
class TrainingLog:
    """Everything one ``cnnviz train`` run records.

    Attributes:
        name: the run's file-name prefix.
        command: the one command that reproduces the run.
        spec: the architecture (``zoo.cnns.CnnSpec``).
        config: the training settings (``zoo.training.TrainConfig.as_dict()``).
        data: where the data came from (source, folder, validation fraction, image size).
        dataset: split sizes; normalization: the statistics the network uses.
        classes: class names, index-aligned with the logits.
        parameters: the network's parameter count.
        test: the held-out evaluation.
        best_epoch, stopped_early, restored_best: from :class:`zoo.training.TrainResult`.
        overfitting: the overfitting message, or None.
        train_seconds: summed epoch times.
        history: one dict per epoch (see ``TrainResult.history``).
        confusion_matrix: counts, row = true class, column = predicted.
        gradient_norms: per layer, on one validation batch.
        activations: sparsity and dead units per activation layer.
        environment: device, threads, versions.
        wall_seconds_this_call: wall time of the command that finished the run.
    """

    name: str
    command: str
    spec: CnnSpec
    config: dict[str, Any]
    data: dict[str, Any]
    dataset: DatasetSizes
    normalization: Normalization
    classes: list[str]
    parameters: int
    test: HeldOut
    best_epoch: int | None = None
    stopped_early: bool = False
    restored_best: bool = False
    overfitting: str | None = None
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    gradient_norms: dict[str, float] = field(default_factory=dict)
    activations: list[ActivationStats] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    wall_seconds_this_call: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, in the file's key order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "spec":
                value = value.as_dict()
            elif f.name == "normalization":
                value = {"mean": list(value.mean), "std": list(value.std), "from": value.source}
            elif f.name == "activations":
                value = [dataclasses.asdict(s) for s in value]
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            if f.name == "wall_seconds_this_call" and value is None:
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingLog:
        """A log from the dict :meth:`to_dict` (or ``json.load`` of a log file) gives."""
        if not isinstance(raw, dict):
            raise CnnvizError(f"a training log is a JSON object, got {type(raw).__name__}")
        for key in ("spec", "normalization", "classes"):
            if key not in raw:
                raise CnnvizError(f"the log has no {key!r}: it was not written by cnnviz train")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        try:
            norm = raw["normalization"]
            values.update(
                spec=CnnSpec.from_dict(raw["spec"]),
                normalization=Normalization(list(norm["mean"]), list(norm["std"]), norm.get("from", "training split")),
                dataset=DatasetSizes(**raw.get("dataset", {"name": "?", "train": 0, "validation": 0})),
                test=HeldOut(**raw.get("test", {"split": "?", "accuracy": float("nan"), "loss": float("nan"),
                                                "examples": 0})),
                activations=[ActivationStats(**s) for s in raw.get("activations", [])],
                classes=list(raw["classes"]),
            )
            values.setdefault("name", "run")
            values.setdefault("command", "")
            values.setdefault("config", {})
            values.setdefault("data", {})
            values.setdefault("parameters", 0)
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise CnnvizError(f"the training log is malformed: {exc}") from None

    def to_json(self) -> str:
        """The log as the text of ``NAME-log.json``."""
        return dumps(self.to_dict())  # the one JSON format: strict (NaN as null), UTF-8

    @classmethod
    def from_json(cls, text: str) -> TrainingLog:
        """A log from the text of a ``NAME-log.json``."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CnnvizError(f"the training log is not JSON: {exc}") from None
        return cls.from_dict(raw)

    def write(self, path: str | Path) -> Path:
        """Write the log atomically (it appears complete or not at all)."""
        return atomic_write(path, lambda f: f.write(self.to_json().encode()))

    @classmethod
    def read(cls, path: str | Path) -> TrainingLog:
        """Read a ``NAME-log.json``; a missing or malformed file is a one-line error."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise CnnvizError(f"no training log at {path}") from None
        except OSError as exc:
            raise CnnvizError(f"cannot read the training log {path}: {exc}") from None
        try:
            return cls.from_json(text)
        except CnnvizError as exc:
            raise CnnvizError(f"{path}: {exc}") from None
