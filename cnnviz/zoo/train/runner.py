"""One training runner: from what a user asked to the files a run leaves, for every model the zoo trains.

The runner owns what a training command does around the loop (:func:`zoo.train.loop.train`): it checks
that a new run does not overwrite an unfinished one and that a resumed run asks for what its checkpoint
holds, writes the one command line that reproduces the run, logs it (:class:`zoo.train.log.TrainingLog`,
the one format), writes the weights, has the charts drawn and removes the checkpoint. Front ends parse
flags into a :class:`ClassifierRequest` and print; the scene models (:mod:`zoo.train.scenes`) use the
same :class:`RunFiles` and :func:`finish`. Drawing lives above the zoo, so charts come in as a callable.

Example:
    >>> files = RunFiles(Path("runs"), "toy")
    >>> files.weights.name, files.log.name, files.checkpoint.name
    ('toy.pt', 'toy-log.json', 'toy-checkpoint.pt')
    >>> scene_command("fashion_det", epochs=10, scenes=4000, seed=0)
    'cnnviz train --model fashion_det --epochs 10 --scenes 4000 --seed 0'
"""

from __future__ import annotations

import os
import platform
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.data.datasets import DATASETS, Splits, load_dataset
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.models.cnns import ARCHITECTURES, CnnSpec, cnn_handle
from cnnviz.zoo.train.checkpoints import load_checkpoint, save_atomic
from cnnviz.zoo.train.diagnostics import (activation_stats, confusion_matrix, find_overfitting,
                                          gradient_norms)
from cnnviz.zoo.train.log import DatasetSizes, HeldOut, Normalization, TrainingLog
from cnnviz.zoo.train.loop import TrainConfig, TrainResult, evaluate, train

# Settings of the network itself, as command-line option -> CnnSpec option (tutorial_cnn only).
TUTORIAL_OPTIONS = {"channels": "channels", "dense": "dense", "convs": "convs_per_block",
                    "conv_dropout": "conv_dropout", "dense_dropout": "dense_dropout"}
DATA_DEFAULTS = {"source": "fashion-mnist", "data_dir": None, "val_fraction": 0.1, "image_size": 32}

Charts = Callable[[TrainingLog, Path], None]  # (log, OUT/NAME) -> draws OUT/NAME-KIND.FORMAT


@dataclass(frozen=True)
class RunFiles:
    """Where run ``name`` keeps its files in folder ``out``."""

    out: Path
    name: str

    @property
    def weights(self) -> Path:
        return self.out / f"{self.name}.pt"

    @property
    def log(self) -> Path:
        return self.out / f"{self.name}-log.json"

    @property
    def checkpoint(self) -> Path:
        return self.out / f"{self.name}-checkpoint.pt"

    def check_fresh(self, resume: bool, other: str = "--out or --name") -> None:
        """A new run must not overwrite an unfinished one (``other``: the flags that pick another place)."""
        if self.checkpoint.exists() and not resume:
            raise CnnvizError(f"{self.checkpoint} holds an unfinished run: add --resume to continue it, "
                              f"or pick another {other}")


def environment(handle: ModelHandle) -> dict[str, Any]:
    """Where a run ran: device, threads, versions, CPUs, date."""
    return {"device": str(handle.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def finish(files: RunFiles, handle: ModelHandle, log: TrainingLog, *, started: float, keep_checkpoint: bool,
           charts: Charts | None = None) -> TrainingLog:
    """Write the weights (a plain state dict), the charts, then the log; remove the checkpoint unless kept."""
    save_atomic({k: v.detach().contiguous().cpu() for k, v in handle.model.state_dict().items()}, files.weights)
    if charts is not None:
        charts(log, files.out / files.name)
    log.wall_seconds_this_call = round(time.perf_counter() - started, 1)
    log.write(files.log)
    if not keep_checkpoint:
        files.checkpoint.unlink(missing_ok=True)
    return log


def scene_command(name: str, *, epochs: int, scenes: int, seed: int) -> str:
    """The command that reproduces a scene model's run."""
    return f"cnnviz train --model {name} --epochs {epochs} --scenes {scenes} --seed {seed}"


# ---------------------------------------------------------------- classifiers


@dataclass(frozen=True)
class ClassifierRequest:
    """What a user asked of a classifier run; a setting left out takes the default, or on resume the
    checkpoint's (a setting given again must agree with it).

    Attributes:
        files: where the run writes.
        arch, activation: the network (defaults: tutorial_cnn, relu).
        options: tutorial_cnn's shape, by command-line name (:data:`TUTORIAL_OPTIONS`).
        data: ``source``, ``data_dir``, ``val_fraction``, ``image_size`` (:data:`DATA_DEFAULTS`).
        config: :class:`~zoo.train.loop.TrainConfig` fields.
        resume: continue the run in ``files.checkpoint``.
        keep_checkpoint: keep the checkpoint after a finished run.
        progress: show progress bars.
    """

    files: RunFiles
    arch: str | None = None
    activation: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    keep_checkpoint: bool = False
    progress: bool = True


@dataclass(frozen=True)
class ClassifierPlan:
    """A classifier run resolved: its settings, data, architecture and reproducing command line."""

    request: ClassifierRequest
    config: TrainConfig
    data: dict[str, Any]
    splits: Splits
    spec: CnnSpec
    command: str


def data_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The data settings: those given, the defaults for the rest."""
    return {key: given[key] if given.get(key) is not None else default for key, default in DATA_DEFAULTS.items()}


def load_splits(data: dict[str, Any], seed: int, progress: bool = True) -> Splits:
    """The data a run's settings name, split and normalized."""
    return load_dataset(data["source"], val_fraction=data["val_fraction"], seed=seed, data_dir=data["data_dir"],
                        image_size=data["image_size"], progress=progress)


def classifier_spec(arch: str | None, activation: str | None, options: dict[str, Any], splits: Splits) -> CnnSpec:
    """The architecture asked for, shaped for ``splits`` (``options`` by command-line name)."""
    arch = arch or "tutorial_cnn"
    if arch not in ARCHITECTURES:
        raise CnnvizError(f"unknown model {arch!r}{closest(arch, ARCHITECTURES)}: cnnviz trains "
                          f"{', '.join(ARCHITECTURES)}")
    given = {TUTORIAL_OPTIONS[flag]: value for flag, value in options.items() if value is not None}
    if given and arch != "tutorial_cnn":
        flags = ", ".join("--" + flag.replace("_", "-") for flag in TUTORIAL_OPTIONS if options.get(flag) is not None)
        raise CnnvizError(f"{flags} shape the tutorial_cnn only, not {arch}: drop them or use --model tutorial_cnn")
    return CnnSpec(arch, activation=activation or "relu", in_channels=splits.channels,
                   num_classes=len(splits.classes), input_size=splits.input_size, options=given)


def plan_classifier(request: ClassifierRequest) -> ClassifierPlan:
    """Resolve a request: from the checkpoint with ``resume`` (settings given again must agree with it),
    else from the request, whose files must not hold an unfinished run."""
    files, progress = request.files, request.progress
    overrides = {k: v for k, v in request.config.items() if v is not None}
    if request.resume:
        state = load_checkpoint(files.checkpoint)
        config = TrainConfig.from_dict(state["config"])
        _check_same(overrides, config.as_dict(), files.checkpoint)
        data, spec = state["extra"]["data"], CnnSpec.from_dict(state["extra"]["spec"])
        _check_same({k: v for k, v in request.data.items() if v is not None}, data, files.checkpoint)
        splits = load_splits(data, config.seed, progress=progress)
        _check_same(_given_spec(request), spec.as_dict(), files.checkpoint)
    else:
        files.check_fresh(resume=False)
        config = TrainConfig(**overrides).validate()
        data = data_settings(request.data)
        splits = load_splits(data, config.seed, progress=progress)
        spec = classifier_spec(request.arch, request.activation, request.options, splits)
    return ClassifierPlan(request, config, data, splits, spec, classifier_command(spec, config, data, files))


def _given_spec(request: ClassifierRequest) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if request.arch is not None:
        given["arch"] = request.arch
    if request.activation is not None:
        given["activation"] = request.activation
    options = {TUTORIAL_OPTIONS[flag]: v for flag, v in request.options.items() if v is not None}
    if options:
        given["options"] = options
    return given


def _check_same(given: dict[str, Any], stored: dict[str, Any], checkpoint: Path) -> None:
    for key, value in given.items():
        if key == "options":
            for option, v in value.items():
                if stored["options"].get(option) != v:
                    raise CnnvizError(f"{checkpoint} was trained with {option}={stored['options'].get(option)}, "
                                      f"not {v}: resume with the same settings or start afresh")
        elif stored.get(key) != value:
            raise CnnvizError(f"{checkpoint} was trained with {key}={stored.get(key)}, not {value}: "
                              "resume with the same settings or start afresh")


def classifier_command(spec: CnnSpec, config: TrainConfig, data: dict[str, Any], files: RunFiles) -> str:
    """The one command that reproduces a classifier run, every setting spelled out."""
    parts = ["cnnviz", "train", "--model", spec.arch, "--activation", spec.activation, "--data", str(data["source"])]
    if data["data_dir"]:
        parts += ["--data-dir", str(data["data_dir"])]
    parts += ["--val-fraction", str(data["val_fraction"])]
    if str(data["source"]).lower() not in DATASETS:
        parts += ["--image-size", str(data["image_size"])]  # used when the folder holds images
    for flag, key in TUTORIAL_OPTIONS.items():
        if key in spec.options:
            value = spec.options[key]
            parts += [f"--{flag.replace('_', '-')}",
                      ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    for key, value in config.as_dict().items():
        if isinstance(value, bool):
            if not value:
                parts.append(f"--no-{key}")
        else:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    parts += ["--out", str(files.out), "--name", files.name]
    return " ".join(shlex.quote(p) for p in parts)


def log_classifier(handle: ModelHandle, plan: ClassifierPlan, result: TrainResult) -> TrainingLog:
    """The log of a finished classifier run: one evaluation on the held-out split (test, else validation)
    and the diagnostics (confusion matrix, gradient norms, activation statistics on up to 1,000
    validation images).
    """
    splits, config = plan.splits, plan.config
    held_out, split_name = (splits.test, "test") if splits.test is not None else (splits.val, "validation")
    final = evaluate(handle, held_out, amp=config.amp)
    matrix = confusion_matrix(final.predictions, held_out.labels, len(splits.classes))
    probe = splits.val.subset(slice(0, 1000)).to(handle.device)
    probe_images = probe.images.float() / 255.0
    overfitting = find_overfitting(result.history)
    return TrainingLog(
        name=plan.request.files.name, command=plan.command, spec=plan.spec, config=config.as_dict(), data=plan.data,
        dataset=DatasetSizes(splits.name, len(splits.train), len(splits.val),
                             len(splits.test) if splits.test is not None else 0),
        normalization=Normalization(list(splits.mean), list(splits.std)),
        classes=list(splits.classes), parameters=sum(p.numel() for p in handle.model.parameters()),
        test=HeldOut(split_name, final.accuracy, final.loss, len(held_out)),
        best_epoch=result.best_epoch, stopped_early=result.stopped_early, restored_best=result.restored_best,
        overfitting=overfitting.message() if overfitting else None,
        train_seconds=round(sum(h["seconds"] for h in result.history), 1), history=result.history,
        confusion_matrix=matrix.tolist(), gradient_norms=gradient_norms(handle, probe_images[:256], probe.labels[:256]),
        activations=activation_stats(handle, probe_images), environment=environment(handle),
    )


def train_classifier(request: ClassifierRequest, device: str | torch.device = "cpu", *,
                     on_start: Callable[[ClassifierPlan, ModelHandle], None] | None = None,
                     charts: Charts | None = None) -> TrainingLog:
    """Run a classifier request to the end: plan it, train (resuming if asked), log it and write
    ``NAME.pt``, ``NAME-log.json`` and the charts into ``request.files.out``; returns the log.

    ``on_start(plan, handle)`` runs before the first epoch (a front end prints the setup there).
    """
    started = time.perf_counter()
    plan = plan_classifier(request)
    files = request.files
    handle = cnn_handle(plan.spec, mean=plan.splits.mean, std=plan.splits.std, classes=plan.splits.classes,
                        name=files.name, seed=plan.config.seed).to(device)
    if on_start is not None:
        on_start(plan, handle)
    result = train(handle, plan.splits, plan.config, checkpoint=files.checkpoint, resume=request.resume,
                   progress=request.progress, extra={"spec": plan.spec.as_dict(), "data": plan.data})
    log = log_classifier(handle, plan, result)
    return finish(files, handle, log, started=started, keep_checkpoint=request.keep_checkpoint, charts=charts)
