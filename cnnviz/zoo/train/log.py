"""The training log: what every training run writes as ``NAME-log.json``, as one dataclass.

The format is defined here and nowhere else: the runner (:mod:`zoo.train.runner`) writes it with
:meth:`TrainingLog.write` for ``cnnviz train``'s classifiers and for the shipped scene models
(``fashion_seg``, ``fashion_det``) alike; the zoo (``fashion_cnn``, the scene models, run folders)
and the gallery read it with :meth:`TrainingLog.read`. The JSON keeps the field names and nesting
below, so logs written before this module read unchanged.

Example:
    >>> from cnnviz.zoo.catalog.fashion_cnn import fashion_log_path
    >>> log = TrainingLog.read(fashion_log_path())
    >>> log.spec.arch, log.test.accuracy >= 0.93, log.classes[0]
    ('tutorial_cnn', True, 'T-shirt/top')
    >>> TrainingLog.from_json(log.to_json()) == log
    True
    >>> scene = TrainingLog.read(fashion_log_path().with_name("fashion_det-log.json"))
    >>> scene.spec is None, scene.test.scores["map50"] == scene.test.accuracy, scene.config["optimizer"]
    (True, True, 'adamw')
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.core.files import atomic_write
from cnnviz.zoo.core.jsonfile import dumps
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import load_weights
from cnnviz.zoo.models.cnns import CnnSpec, cnn_handle
from cnnviz.zoo.train.diagnostics import ActivationStats


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
    """The one evaluation on held-out data at the end of a run: ``accuracy`` is the headline score (a
    classifier's accuracy, a segmenter's mean IoU, a detector's mAP@0.5), ``loss`` None where none was
    measured, ``scores`` the model's own scores by name (written beside the others in the JSON)."""

    split: str
    accuracy: float
    loss: float | None
    examples: int
    scores: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict: the four fields, then the scores."""
        return {"split": self.split, "accuracy": self.accuracy, "loss": self.loss, "examples": self.examples,
                **self.scores}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HeldOut:
        """A held-out evaluation from :meth:`to_dict`'s dict; keys beyond the four are scores."""
        fixed = {"split", "accuracy", "loss", "examples"}
        return cls(raw["split"], raw["accuracy"], raw["loss"], raw["examples"],
                   {k: v for k, v in raw.items() if k not in fixed})


@dataclass
class TrainingLog:
    """Everything one ``cnnviz train`` run records.

    Attributes:
        name: the run's file-name prefix.
        command: the one command that reproduces the run.
        spec: the architecture (``zoo.models.cnns.CnnSpec``); None for a network the zoo builds by name
            (the scene models).
        config: the training settings (``zoo.train.loop.TrainConfig.as_dict()``).
        data: where the data came from (source, folder, validation fraction, image size; for the scene
            models: scene counts, canvas, items per scene, seed).
        dataset: split sizes; normalization: the statistics the network uses.
        classes: class names, index-aligned with the logits.
        parameters: the network's parameter count.
        test: the held-out evaluation.
        best_epoch, stopped_early, restored_best: from :class:`zoo.train.loop.TrainResult`.
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
    spec: CnnSpec | None
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
                if value is None:
                    continue
                value = value.as_dict()
            elif f.name == "normalization":
                value = {"mean": list(value.mean), "std": list(value.std), "from": value.source}
            elif f.name == "test":
                value = value.to_dict()
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
        for key in ("normalization", "classes"):
            if key not in raw:
                raise CnnvizError(f"the log has no {key!r}: it was not written by cnnviz train")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        try:
            norm = raw["normalization"]
            values.update(
                spec=CnnSpec.from_dict(raw["spec"]) if "spec" in raw else None,
                normalization=Normalization(list(norm["mean"]), list(norm["std"]), norm.get("from", "training split")),
                dataset=DatasetSizes(**raw.get("dataset", {"name": "?", "train": 0, "validation": 0})),
                test=HeldOut.from_dict(raw.get("test", {"split": "?", "accuracy": float("nan"),
                                                        "loss": float("nan"), "examples": 0})),
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


def read_training_log(path: str | Path) -> TrainingLog:
    """A ``NAME-log.json`` written by a training run (see :class:`TrainingLog`).

    Example:
        >>> from cnnviz.zoo.catalog.fashion_cnn import fashion_log_path
        >>> read_training_log(fashion_log_path()).test.accuracy >= 0.93
        True
    """
    return TrainingLog.read(path)


def handle_from_log(log: TrainingLog | dict[str, Any], weights: str | Path | None, name: str) -> ModelHandle:
    """The classifier a training log (or its JSON dict) describes, with ``weights`` loaded (None: random)."""
    log = log if isinstance(log, TrainingLog) else TrainingLog.from_dict(log)
    if log.spec is None:
        raise CnnvizError(f"the log of {log.name} names no architecture: load it by its zoo name ({log.name})")
    handle = cnn_handle(log.spec, mean=log.normalization.mean, std=log.normalization.std, classes=log.classes,
                        name=name)
    if weights is not None:
        load_weights(handle.model, weights, what=name)
    return handle.eval()
