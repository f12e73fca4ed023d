"""The training loop: optimizers, schedules, early stopping, checkpoints that survive ``kill -9``
(:mod:`zoo.train.checkpoints`; the LR range test is :mod:`zoo.train.lr_range`).

A run is a pure function of its configuration and seed: epoch ``e`` draws
its batch order and augmentation from a generator seeded with ``(seed, e)``,
and the global random state (dropout) is saved in every checkpoint. So a run
killed in mid-epoch and resumed from its last checkpoint repeats the lost
epoch exactly and ends where an uninterrupted run would.

Example:
    >>> from cnnviz.zoo.data import load_dataset
    >>> from cnnviz.zoo.models import CnnSpec, cnn_handle
    >>> splits = load_dataset("fashion-mnist")  # doctest: +NEEDS_FASHION_MNIST
    >>> handle = cnn_handle(CnnSpec("tutorial_cnn"), mean=splits.mean, std=splits.std, classes=splits.classes)
    >>> result = train(handle, splits, TrainConfig(epochs=1), checkpoint="run/checkpoint.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.core.guard import preserve
from cnnviz.zoo.data.datasets import NO_AUGMENT, Splits, TensorData, batches
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.train.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, remove_stale_temporaries, save_atomic

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
# Usual (peak) learning rate and weight decay of each optimizer, used when none is given.
# AdamW's decay is decoupled from the gradient, so it is two orders larger than an L2 penalty.
DEFAULT_LR = {"sgd": 0.05, "momentum": 0.05, "nesterov": 0.05, "adam": 3e-3, "adamw": 3e-3, "rmsprop": 1e-3,
              "adagrad": 0.01}
DEFAULT_WEIGHT_DECAY = {name: 0.05 if name == "adamw" else 5e-4 for name in OPTIMIZERS}


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: passes over the training split.
        batch_size: examples per step.
        optimizer: one of :data:`OPTIMIZERS` (``momentum`` is SGD with
            momentum, ``nesterov`` SGD with Nesterov momentum).
        lr: learning rate (the peak rate for ``onecycle``); None: the
            optimizer's usual one (:data:`DEFAULT_LR`).
        momentum: for momentum/Nesterov SGD (RMSprop and Adagrad take none).
        weight_decay: L2 penalty (decoupled for AdamW); never applied to
            biases, batch-norm and PReLU parameters. None: 0.05 for AdamW,
            5e-4 for the others.
        schedule: one of :data:`SCHEDULES`.
        step_size, gamma: ``step`` multiplies the rate by ``gamma`` every
            ``step_size`` epochs; ``plateau`` by ``gamma`` after ``patience``
            epochs without a better validation loss.
        patience: for ``plateau``.
        label_smoothing: share of the target probability spread evenly over all
            classes, so the network is not pushed to ever larger logits.
        early_stopping: stop after this many epochs without a better validation
            loss and restore the best weights (0: off).
        augment: apply the dataset's label-preserving augmentation.
        amp: mixed precision on CUDA (bfloat16, or float16 with loss scaling);
            ignored on other devices.
        seed: seeds initialization-independent randomness: batch order,
            augmentation, dropout.

    Example:
        >>> config = TrainConfig(optimizer="nesterov", schedule="cosine").validate()
        >>> config.lr, config.weight_decay
        (0.05, 0.0005)
    """

    epochs: int = 18
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str = "onecycle"
    step_size: int = 5
    gamma: float = 0.1
    patience: int = 2
    label_smoothing: float = 0.1
    early_stopping: int = 0
    augment: bool = True
    amp: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        # Fill in the optimizer's usual values, so a stored config says what was really used.
        if self.lr is None and self.optimizer in DEFAULT_LR:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        if self.weight_decay is None and self.optimizer in DEFAULT_WEIGHT_DECAY:
            object.__setattr__(self, "weight_decay", DEFAULT_WEIGHT_DECAY[self.optimizer])

    def validate(self) -> TrainConfig:
        """``self``, or a :class:`CnnvizError` naming the first bad value."""
        if self.optimizer not in OPTIMIZERS:
            raise CnnvizError(f"unknown optimizer {self.optimizer!r}{closest(self.optimizer, OPTIMIZERS)} "
                              f"(choose from {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise CnnvizError(f"unknown schedule {self.schedule!r}{closest(self.schedule, SCHEDULES)} "
                              f"(choose from {', '.join(SCHEDULES)})")
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 2, f"the batch size must be at least 2 (batch norm), got {self.batch_size}"),
            (math.isfinite(self.lr) and self.lr > 0, f"the learning rate must be positive, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.step_size >= 1, f"the step size must be at least 1 epoch, got {self.step_size}"),
            (0 < self.gamma < 1, f"gamma must be in (0, 1), got {self.gamma}"),
            (self.patience >= 0, f"patience must be >= 0, got {self.patience}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.early_stopping >= 0, f"early stopping patience must be >= 0, got {self.early_stopping}"),
        ]
        for ok, message in checks:
            if not ok:
                raise CnnvizError(message)
        return self

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for checkpoints and logs."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of :meth:`as_dict` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise CnnvizError(f"unknown training settings {sorted(unknown)}: was this written by cnnviz train?")
        return cls(**values)


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        history: one dict per epoch: ``epoch``, ``train_loss``, ``train_acc``,
            ``val_loss``, ``val_acc``, ``lr``, ``grad_norm`` (mean global
            gradient norm), ``layer_grad_norms`` (mean per layer), ``seconds``.
        best_epoch: epoch (1-based) with the lowest validation loss.
        stopped_early: whether early stopping ended the run.
        restored_best: whether the best epoch's weights were put back.
        seconds: wall time of the epochs run in this call.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    restored_best: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and the predicted labels of a model on a dataset."""

    loss: float
    accuracy: float
    predictions: torch.Tensor


# ---------------------------------------------------------------- building blocks

def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over ``model``'s trainable parameters.

    Weight decay pulls weights towards zero; on biases, batch-norm scales and
    shifts and PReLU slopes that only fights the layer's purpose, so those
    (the one-dimensional parameters) get none.

    Example:
        >>> make_optimizer(nn.Linear(3, 2), TrainConfig(optimizer="nesterov")).defaults["nesterov"]
        True
    """
    config.validate()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CnnvizError("the model has no trainable parameters")
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    lr, name = config.lr, config.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=name == "nesterov")
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr)
    return torch.optim.Adagrad(groups, lr=lr)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   steps_per_epoch: int) -> tuple[Any, bool]:
    """The learning-rate schedule of ``config`` and whether it steps per batch (else per epoch).

    ``cosine`` and ``onecycle`` change the rate every batch, smoothly;
    ``step`` and ``plateau`` once per epoch, ``plateau`` on the validation loss.

    Example:
        >>> opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
        >>> type(make_scheduler(opt, TrainConfig(schedule="step"), 10)[0]).__name__
        'StepLR'
    """
    total = config.epochs * steps_per_epoch
    if config.schedule == "none":
        return None, False
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), False
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if config.schedule == "onecycle":
        # Cycling momentum against the rate is part of the recipe where the optimizer has one.
        cycle = config.optimizer in ("momentum", "nesterov", "adam", "adamw")
        if total < 4:
            raise CnnvizError(f"the onecycle schedule needs at least 4 steps, this run has {total}: "
                              "train longer, use smaller batches, or choose another schedule")
        # A quarter of the steps warm up; at least one and a half, so each phase has a length.
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total,
                                                   pct_start=max(0.25, 1.5 / total), cycle_momentum=cycle), True
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma,
                                                      patience=config.patience), False


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator for batch order and augmentation in ``epoch`` (0-based) of a run seeded ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (dropout, initialization) and make cuDNN deterministic."""
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op elsewhere."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=amp_dtype()):
            yield
    else:
        yield


def amp_dtype() -> torch.dtype:
    """bfloat16 (no loss scaling needed) on GPUs that have it, else float16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)


def _channels_last(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    # Convolutions run markedly faster on CPU (oneDNN) and GPU in NHWC.
    return images.contiguous(memory_format=torch.channels_last) if _is_channels_last(model) else images


def _is_channels_last(model: nn.Module) -> bool:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last) \
        and conv.weight.shape[-1] > 1


# ---------------------------------------------------------------- evaluation

def evaluate(model: nn.Module, data: TensorData, *, batch_size: int = 1000, label_smoothing: float = 0.0,
             amp: bool = False) -> Evaluation:
    """Mean cross-entropy, accuracy and predictions of ``model`` on ``data``, in eval mode.

    The model's train/eval mode is restored afterwards.

    Example:
        >>> from cnnviz.zoo.data import read_idx_split
        >>> test = read_idx_split("/usr/share/datasets/fashion-mnist", "t10k")  # doctest: +NEEDS_FASHION_MNIST
        >>> evaluate(zoo.load("fashion_cnn", device="cpu"), test).accuracy > 0.93  # doctest: +SKIP
        True
    """
    if len(data) == 0:
        raise CnnvizError("nothing to evaluate: the dataset is empty")
    device = next(model.parameters()).device
    data = data.to(device)
    total, correct, predictions = torch.zeros((), device=device, dtype=torch.float64), 0, []
    labelled = 0  # labels seen: one per image, or one per pixel for a segmenter's (N, H, W) masks
    with preserve(model), torch.no_grad():
        for images, labels in batches(data, batch_size):
            with autocast(device, amp):
                logits = model(_channels_last(images, model))
            total += F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing,
                                     reduction="sum").double()
            predicted = logits.argmax(1)
            correct += int((predicted == labels).sum())
            labelled += labels.numel()
            predictions.append(predicted)
    return Evaluation(float(total) / labelled, correct / labelled, torch.cat(predictions).cpu())


# ---------------------------------------------------------------- training

class Objective:
    """What the loop minimizes and counts: cross-entropy of the handle's logits against class labels, one
    per image or one per pixel (a segmenter's masks). A task with another loss (a detector's) subclasses it.
    """

    def step(self, handle: ModelHandle, images: torch.Tensor, labels: torch.Tensor,
             config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | int, int]:
        """The batch's loss (on the graph), its correct labels and how many labels it has (0: no accuracy)."""
        logits = handle(images)
        return classifier_loss(logits, labels, config), (logits.detach().argmax(1) == labels).sum(), labels.numel()

    def validate(self, handle: ModelHandle, data: TensorData, config: TrainConfig,
                 amp: bool) -> tuple[float, float | None]:
        """Validation loss and accuracy (None where the task has none), the model's mode left as found."""
        val = evaluate(handle, data, label_smoothing=config.label_smoothing, amp=amp)
        return val.loss, val.accuracy


def _grad_owners(model: nn.Module) -> tuple[list[str], list[nn.Parameter], torch.Tensor]:
    """Layer names, their parameters, and for each parameter the index of its layer."""
    names: list[str] = []
    params: list[nn.Parameter] = []
    owners: list[int] = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own:
            names.append(name or "(model)")
            params.extend(own)
            owners.extend([len(names) - 1] * len(own))
    return names, params, torch.tensor(owners, dtype=torch.long)


class _Run:
    """The state of one training run: what a checkpoint holds, and one epoch of training."""

    def __init__(self, handle: ModelHandle, splits: Splits, config: TrainConfig,
                 objective: Objective | None = None) -> None:
        self.handle, self.config, self.device = handle, config, handle.device
        self.objective = objective if objective is not None else Objective()
        self.train_data, self.val_data = splits.train.to(self.device), splits.val.to(self.device)
        if len(self.train_data) < config.batch_size:
            raise CnnvizError(f"{len(self.train_data)} training examples are fewer than one batch of "
                              f"{config.batch_size}: lower --batch-size")
        if len(self.val_data) == 0:
            raise CnnvizError("the validation split is empty: use a validation fraction above 0")
        self.steps = len(self.train_data) // config.batch_size  # drop_last: batch norm dislikes tiny batches
        model = handle.model
        self.optimizer = make_optimizer(model, config)
        self.scheduler, self.per_step = make_scheduler(self.optimizer, config, self.steps)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and amp_dtype() == torch.float16)
        self.augment = splits.augment if config.augment else NO_AUGMENT
        self.layer_names, self.params, owners = _grad_owners(model)
        self.owners = owners.to(self.device)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "val_loss": math.inf, "model": None}
        self.epoch, self.stopped = 0, False

    def state(self, extra: dict[str, Any]) -> dict[str, Any]:
        """Everything needed to continue exactly where this epoch ended."""
        return {
            "format": CHECKPOINT_FORMAT, "epoch": self.epoch, "stopped": self.stopped,
            "config": self.config.as_dict(), "model": self.handle.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
            "history": self.history, "best": self.best, "extra": extra,
        }

    def restore(self, state: dict[str, Any], source: Path) -> None:
        """Put back a :meth:`state`; its settings must be this run's."""
        if state["config"] != self.config.as_dict():
            changed = sorted(k for k, v in self.config.as_dict().items() if state["config"].get(k) != v)
            raise CnnvizError(f"{source} was trained with other settings ({', '.join(changed)}): "
                              "resume with the same settings, or start afresh with another --out")
        self.handle.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history, self.best = state["history"], state["best"]
        self.epoch, self.stopped = state["epoch"], state["stopped"]

    def train_epoch(self, progress: bool) -> dict[str, Any]:
        """One pass over the training split, then validation; returns the history entry."""
        config, device, model = self.config, self.device, self.handle.model
        tic = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        layer_norm_sum = torch.zeros(len(self.layer_names), device=device)
        seen = labelled = 0
        bar = tqdm(total=self.steps, desc=f"epoch {self.epoch + 1}/{config.epochs}", disable=not progress,
                   unit="batch", dynamic_ncols=True)
        for step, (images, labels) in enumerate(batches(
                self.train_data, config.batch_size, shuffle=True, generator=epoch_generator(config.seed, self.epoch),
                augment=self.augment, drop_last=True)):
            with autocast(device, self.use_amp):
                loss, hits, counted = self.objective.step(self.handle, _channels_last(images, model), labels, config)
            if not torch.isfinite(loss):
                raise CnnvizError(f"the loss became {float(loss)} in epoch {self.epoch + 1}: lower the learning "
                                  f"rate (now {self.optimizer.param_groups[0]['lr']:.3g}; try cnnviz lr-find)")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # so the gradient norms below are the true ones
            norms = torch.stack(torch._foreach_norm([p.grad if p.grad is not None else torch.zeros_like(p)
                                                     for p in self.params]))
            layer_norm_sum += torch.zeros_like(layer_norm_sum).index_add_(0, self.owners, norms.square()).sqrt()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.per_step:
                self.scheduler.step()
            loss_sum += loss.detach().double() * len(labels)
            correct += hits
            seen += len(labels)
            labelled += counted
            bar.update(1)
            if progress and step % 20 == 0:
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}",
                                acc=f"{int(correct) / labelled:.4f}" if labelled else "-")
        val_loss, val_acc = self.objective.validate(self.handle, self.val_data, config, self.use_amp)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None and not self.per_step:
            self.scheduler.step(val_loss) if config.schedule == "plateau" else self.scheduler.step()
        layer_norms = (layer_norm_sum / self.steps).tolist()
        entry = {
            "epoch": self.epoch + 1, "train_loss": float(loss_sum) / seen,
            "train_acc": int(correct) / labelled if labelled else None, "val_loss": val_loss, "val_acc": val_acc,
            "lr": lr,
            "grad_norm": math.sqrt(sum(n * n for n in layer_norms)),
            "layer_grad_norms": dict(zip(self.layer_names, layer_norms)),
            "seconds": time.perf_counter() - tic,
        }
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", val_loss=f"{val_loss:.4f}",
                        **{k: f"{entry[k]:.4f}" for k in ("train_acc", "val_acc") if entry[k] is not None})
        bar.close()
        return entry

    def end_epoch(self, entry: dict[str, Any]) -> None:
        """Record the epoch; keep the best weights and decide on early stopping."""
        self.history.append(entry)
        self.epoch += 1
        patience = self.config.early_stopping
        if entry["val_loss"] < self.best["val_loss"]:
            weights = ({k: v.detach().clone() for k, v in self.handle.model.state_dict().items()}
                       if patience else None)  # only early stopping restores them
            self.best = {"epoch": self.epoch, "val_loss": entry["val_loss"], "model": weights}
        self.stopped = bool(patience) and self.epoch - self.best["epoch"] >= patience


def train(handle: ModelHandle, splits: Splits, config: TrainConfig, *, checkpoint: str | Path | None = None,
          resume: bool = False, progress: bool = True, extra: dict[str, Any] | None = None,
          objective: Objective | None = None) -> TrainResult:
    """Train ``handle`` on ``splits.train``, validating on ``splits.val`` after every epoch.

    The handle normalizes with its own mean/std, so the data stays in [0, 1].
    After each epoch the full state (weights, optimizer, schedule, loss
    scaler, random state, history, best weights) is written atomically to
    ``checkpoint``.

    Args:
        handle: the model (trained in place, on its device).
        splits: training and validation data.
        config: optimizer, schedule, regularization, seed.
        checkpoint: where to write the state after every epoch (None: nowhere).
        resume: continue from ``checkpoint`` if it exists; its configuration
            must equal ``config``.
        progress: show tqdm progress bars.
        extra: plain values stored in the checkpoint for the caller (e.g. the
            model description and normalization).
        objective: the loss and accuracy (default: cross-entropy over classes,
            :class:`Objective`; a detector brings its own).

    Returns:
        The history (all epochs, including those before a resume) and how it ended.
        The handle is left in eval mode, ready for inference.

    Example:
        >>> result = train(handle, splits, TrainConfig(epochs=2, lr=1e-3))  # doctest: +SKIP
        >>> result.history[-1]["val_acc"]  # doctest: +SKIP
        0.89
    """
    config.validate()
    seed_everything(config.seed)
    if handle.device.type != "mps":
        handle.model.to(memory_format=torch.channels_last)
    run = _Run(handle, splits, config, objective)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None:
        remove_stale_temporaries(checkpoint)
        if resume and checkpoint.is_file():
            run.restore(load_checkpoint(checkpoint), checkpoint)
    started = time.perf_counter()
    while run.epoch < config.epochs and not run.stopped:
        run.end_epoch(run.train_epoch(progress))
        if checkpoint is not None:
            save_atomic(run.state(extra or {}), checkpoint)
    result = TrainResult(history=run.history, best_epoch=run.best["epoch"], stopped_early=run.stopped,
                         seconds=time.perf_counter() - started)
    if config.early_stopping and run.best["model"] is not None and run.best["epoch"] != len(run.history):
        handle.model.load_state_dict(run.best["model"])  # restore-best: the weights of the lowest validation loss
        result.restored_best = True
    handle.eval()
    return result
