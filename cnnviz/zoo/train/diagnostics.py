"""Training diagnostics, as numbers: overfitting flagged, gradient norms, dead units, confusion matrices.

Nothing here draws: :mod:`interpret.views.charts` turns these numbers into figures.
No function here changes the model: it comes back in the mode it was in, with
the same ``requires_grad`` and ``.grad``, and batch-norm statistics untouched.

Example:
    >>> history = [{"train_loss": 0.9, "val_loss": 0.8}, {"train_loss": 0.7, "val_loss": 0.75}]
    >>> find_overfitting(history) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.zoo.models.cnns import ACTIVATION_TYPES
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.core.guard import preserve
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.core.hooks import record
from cnnviz.zoo.handle.layers import resolve_layer

# Activations whose outputs can be "dead" (never positive); ReLU6 and SiLU appear in the zoo's other models.
WATCHED_ACTIVATIONS: tuple[type[nn.Module], ...] = (*ACTIVATION_TYPES, nn.ReLU6, nn.SiLU)

@dataclass(frozen=True)
class Overfitting:
    """Where validation loss turned up while training loss kept falling.

    Attributes:
        epoch: the first epoch (1-based) after the validation-loss minimum.
        best_epoch: the epoch of the validation-loss minimum.
        val_from, val_to: validation loss at ``best_epoch`` and at the end.
        train_from, train_to: training loss at ``best_epoch`` and at the end.
    """

    epoch: int
    best_epoch: int
    val_from: float
    val_to: float
    train_from: float
    train_to: float

    def message(self) -> str:
        """One line for logs and plot captions."""
        return (f"overfitting from epoch {self.epoch}: validation loss rose {self.val_from:.4f} -> "
                f"{self.val_to:.4f} after epoch {self.best_epoch} while training loss fell "
                f"{self.train_from:.4f} -> {self.train_to:.4f}")


def find_overfitting(history: Sequence[dict[str, Any]], *, patience: int = 2,
                     tolerance: float = 0.02) -> Overfitting | None:
    """Flag overfitting: validation loss rising for ``patience`` epochs or more while training loss falls.

    The validation loss must end more than ``tolerance`` (relative) above its
    minimum, at least ``patience`` epochs after it, and the training loss must
    be lower at the end than at that minimum. Small wiggles of a healthy run
    pass unflagged.

    Example:
        >>> h = [{"train_loss": t, "val_loss": v} for t, v in [(1, 1), (.8, .7), (.6, .8), (.4, .9)]]
        >>> find_overfitting(h).epoch
        3
    """
    val = [float(h["val_loss"]) for h in history]
    train = [float(h["train_loss"]) for h in history]
    if len(val) < patience + 1:
        return None
    best = min(range(len(val)), key=val.__getitem__)
    after = val[best + 1:]
    if len(after) < patience or val[-1] <= val[best] * (1 + tolerance) or train[-1] >= train[best]:
        return None
    if not all(v > val[best] for v in after):  # a dip back to the minimum is noise, not a trend
        return None
    return Overfitting(best + 2, best + 1, val[best], val[-1], train[best], train[-1])


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``(num_classes, num_classes)``: row = true class, column = predicted class.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    predictions, labels = predictions.flatten().long().cpu(), labels.flatten().long().cpu()
    if predictions.shape != labels.shape:
        raise CnnvizError(f"{predictions.numel()} predictions but {labels.numel()} labels")
    if labels.numel() and (int(torch.maximum(predictions, labels).max()) >= num_classes
                           or int(torch.minimum(predictions, labels).min()) < 0):
        raise CnnvizError(f"class indices must be in 0..{num_classes - 1}")
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).view(num_classes,
                                                                                              num_classes)


@dataclass(frozen=True)
class ActivationStats:
    """How much of one activation layer is off.

    Attributes:
        name: dotted layer name.
        kind: the activation's class name.
        units: channels (conv) or features (dense).
        sparsity: fraction of all outputs that are not positive (exact zeros for ReLU).
        dead_fraction: fraction of units never positive on any input at any
            position: a dead ReLU passes no gradient and no longer learns.
    """

    name: str
    kind: str
    units: int
    sparsity: float
    dead_fraction: float


def activation_stats(model: nn.Module, images: torch.Tensor, *, layers: Sequence[str] | None = None,
                     batch_size: int = 256) -> list[ActivationStats]:
    """Sparsity and dead-unit fraction of each activation layer over ``images`` (in eval mode).

    Args:
        model: a handle (layer names are relative to its network) or a module.
        images: ``(N, C, H, W)`` inputs as the model takes them.
        layers: dotted names to watch (default: every activation module).
        batch_size: images per forward pass (counts are accumulated).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> stats = activation_stats(net, torch.randn(8, 2))
        >>> stats[0].name
        '1'
    """
    net = _network(model)
    watched = _watched_layers(net, layers)
    zeros = {name: 0 for name in watched}
    counts = {name: 0 for name in watched}
    alive: dict[str, torch.Tensor] = {}
    with preserve(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            with record({name: resolve_layer(net, name) for name in watched}) as recordings:
                model(images[start:start + batch_size])
            for name, rec in recordings.items():
                for out in rec.outputs:
                    positive = out > 0
                    zeros[name] += int(out.numel() - positive.sum())
                    counts[name] += out.numel()
                    unit_alive = positive.transpose(0, 1).reshape(out.shape[1], -1).any(1)
                    alive[name] = alive[name] | unit_alive if name in alive else unit_alive
    stats = []
    for name in watched:
        if name not in alive:
            raise CnnvizError(f"layer {name!r} did not run in the forward pass: pick another layer")
        units = alive[name]
        stats.append(ActivationStats(name, type(resolve_layer(net, name)).__name__, units.numel(),
                                     zeros[name] / counts[name], 1.0 - float(units.float().mean())))
    return stats


def _network(model: nn.Module) -> nn.Module:
    """The module layer names are relative to: a handle's network, or the module itself."""
    return model.model if isinstance(model, ModelHandle) else model


def _watched_layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    if layers is not None:
        return list(layers)
    names = [name for name, module in model.named_modules() if isinstance(module, WATCHED_ACTIVATIONS)]
    if not names:
        raise CnnvizError(f"{type(model).__name__} has no activation modules to watch: name the layers")
    return names


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The L2 norm of the loss gradient for each layer's parameters, on one batch, in eval mode.

    Eval mode keeps batch-norm statistics unchanged and dropout off, so the
    numbers are reproducible; the training loop records train-mode norms per
    epoch in its history. Vanishing gradients show as norms shrinking
    towards the input, exploding ones as norms growing.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> sorted(gradient_norms(net, torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])))
        ['0', '2']
    """
    owned = [(name or "(model)", [p for p in module.parameters(recurse=False) if p.requires_grad])
             for name, module in _network(model).named_modules()]
    owned = [(name, params) for name, params in owned if params]
    if not owned:
        raise CnnvizError("the model has no trainable parameters to take gradients of")
    with preserve(model, freeze=False), torch.enable_grad():
        loss = F.cross_entropy(model(images), labels.to(images.device))
        grads = torch.autograd.grad(loss, [p for _, params in owned for p in params], allow_unused=True)
    norms, i = {}, 0
    for name, params in owned:
        squares = [float(g.detach().float().square().sum()) for g in grads[i:i + len(params)] if g is not None]
        norms[name] = math.sqrt(sum(squares))
        i += len(params)
    return norms
