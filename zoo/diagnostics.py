"""Training diagnostics: curves with overfitting flagged, gradient norms, dead units, confusion matrices.

Computing and drawing are kept apart: ``find_*``/``*_stats``/``*_norms``/
``confusion_matrix`` return numbers and tensors; ``draw_*`` take those and
return ``uint8`` RGB arrays (save them with ``zoo.save_image``). No function
here changes the model: it comes back in the mode it was in, with the same
``requires_grad`` and ``.grad``, and batch-norm statistics untouched.

Example:
    >>> history = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "train_acc": 0.7, "val_acc": 0.72}]
    >>> draw_curves(history).dtype
    dtype('uint8')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.cnns import ACTIVATION_TYPES
from zoo.errors import CnnvizError
from zoo.guard import preserve
from zoo.handle import ModelHandle
from zoo.hooks import record
from zoo.layers import resolve_layer

# Activations whose outputs can be "dead" (never positive); ReLU6 and SiLU appear in the zoo's other models.
WATCHED_ACTIVATIONS: tuple[type[nn.Module], ...] = (*ACTIVATION_TYPES, nn.ReLU6, nn.SiLU)

TRAIN_COLOR = (31, 119, 180)
VAL_COLOR = (255, 127, 14)
MARK_COLOR = (200, 30, 30)


# ================================================================ computing

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


def summary_lines(model: nn.Module, input_size: int | None = None) -> list[str]:
    """A Keras-style summary: each leaf layer's output shape and parameters by the textbook rules.

    Reuses :func:`interpret.layer_table`; the last line compares the
    textbook total with the real parameter count.

    Example:
        >>> from zoo.cnns import build_cnn
        >>> summary_lines(build_cnn("lenet5"), 28)[-1]
        'total: 61,706 parameters by the textbook rules, 61,706 counted: equal'
    """
    from interpret.summary import layer_table, textbook_total  # interpret imports zoo: import lazily
    from zoo.handle import as_handle

    handle = as_handle(model)
    rows = [r for r in layer_table(handle, input_size) if r.rule]  # containers have no rule: leaves only
    width = max(len(r.name) for r in rows)
    kinds = max(len(r.type) for r in rows)
    lines = [f"{'layer':<{width}}  {'type':<{kinds}}  {'output shape':<14}  {'params':>9}  rule"]
    for r in rows:
        shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
        lines.append(f"{r.name:<{width}}  {r.type:<{kinds}}  {shape:<14}  {r.textbook:>9,}  {r.rule}")
    real, textbook = sum(p.numel() for p in handle.model.parameters()), textbook_total(handle.model)
    lines.append(f"total: {textbook:,} parameters by the textbook rules, {real:,} counted: "
                 f"{'equal' if real == textbook else 'DIFFERENT'}")
    return lines


# ================================================================ drawing

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], *, scale: float = 0.4,
          color: tuple[int, int, int] = (0, 0, 0), thickness: int = 1) -> None:
    cv2.putText(canvas, text.encode("ascii", "replace").decode("ascii"), (int(origin[0]), int(origin[1])),
                FONT, scale, color, thickness, cv2.LINE_AA)


def _text_width(text: str, scale: float = 0.4) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].

    Example:
        >>> nice_ticks(0.03, 0.97)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise CnnvizError("cannot draw non-finite values")
    if high <= low:
        high = low + (abs(low) or 1.0) * 0.1
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _format_tick(value: float, log: bool) -> str:
    if log:
        return f"1e{round(math.log10(value))}"
    return f"{value:g}" if abs(value) < 1e4 else f"{value:.0e}"


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label, x and y values, an RGB colour."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: tuple[int, int, int]


def line_chart(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, log_x: bool = False,
               marks: Sequence[tuple[float, str]] = (), shade_from: float | None = None,
               size: tuple[int, int] = (420, 300)) -> np.ndarray:
    """A line chart as a uint8 RGB array: axes with round ticks, grid, legend, vertical marks.

    Args:
        series: the lines.
        title, xlabel, ylabel: texts.
        log_x: logarithmic x axis (for learning rates).
        marks: ``(x, label)`` vertical dashed lines.
        shade_from: shade the plot right of this x (e.g. where overfitting starts).
        size: ``(width, height)`` in pixels.

    Example:
        >>> line_chart([Series("loss", [1, 2, 3], [0.9, 0.5, 0.4], (0, 0, 255))], title="t",
        ...            xlabel="epoch", ylabel="loss").shape
        (300, 420, 3)
    """
    points = [(x, y) for s in series for x, y in zip(s.x, s.y) if math.isfinite(y) and math.isfinite(x)]
    if not points:
        raise CnnvizError(f"nothing to draw in {title!r}: no finite values")
    if log_x and any(x <= 0 for x, _ in points):
        raise CnnvizError("a logarithmic axis needs positive x values")
    width, height = size
    left, right, top, bottom = 58, 14, 26, 40
    canvas = np.full((height, width, 3), 255, np.uint8)
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: float(v))
    xs, ys = [fx(x) for x, _ in points], [y for _, y in points]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    y_ticks = nice_ticks(min(ys), max(ys))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    x_ticks = (list(range(math.floor(x_lo), math.ceil(x_hi) + 1)) if log_x
               else [t for t in nice_ticks(x_lo, x_hi, 6) if x_lo - 1e-9 <= t <= x_hi + 1e-9])

    def px(v: float) -> int:
        return round(left + (v - x_lo) / (x_hi - x_lo) * (width - left - right))

    def py(v: float) -> int:
        return round(height - bottom - (v - y_lo) / (y_hi - y_lo) * (height - top - bottom))

    if shade_from is not None:
        x0 = max(px(fx(shade_from)), left)
        canvas[top:height - bottom, x0:width - right] = (255, 232, 232)
    for t in y_ticks:
        cv2.line(canvas, (left, py(t)), (width - right, py(t)), (225, 225, 225), 1)
        label = _format_tick(t, False)
        _text(canvas, label, (left - 5 - _text_width(label), py(t) + 4))
    for t in x_ticks:
        if x_lo - 1e-9 <= t <= x_hi + 1e-9:
            cv2.line(canvas, (px(t), top), (px(t), height - bottom), (235, 235, 235), 1)
            label = _format_tick(10 ** t if log_x else t, log_x)
            _text(canvas, label, (px(t) - _text_width(label) // 2, height - bottom + 14))
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (90, 90, 90), 1)
    for x, label in marks:
        xm = px(fx(x))
        for y0 in range(top, height - bottom, 8):
            cv2.line(canvas, (xm, y0), (xm, min(y0 + 4, height - bottom)), MARK_COLOR, 1)
        _text(canvas, label, (min(xm + 3, width - right - _text_width(label) - 2), top + 12), color=MARK_COLOR)
    for s in series:
        pts = [(px(fx(x)), py(y)) for x, y in zip(s.x, s.y) if math.isfinite(y) and math.isfinite(x)]
        if len(pts) > 1:
            cv2.polylines(canvas, [np.array(pts, np.int32)], False, s.color, 2, cv2.LINE_AA)
        if len(pts) <= 30:  # few points: show each one
            for p in pts:
                cv2.circle(canvas, p, 3, s.color, -1, cv2.LINE_AA)
    legend_w = max(_text_width(s.label) for s in series) + 30
    legend_h = 14 * len(series) + 6
    x_legend = width - right - legend_w
    drawn = [(px(fx(x)), py(y)) for s in series for x, y in zip(s.x, s.y) if math.isfinite(y) and math.isfinite(x)]
    corners = [top + 4 + (14 if marks else 0), height - bottom - legend_h - 4]  # top right, bottom right

    def covered(y_top: int) -> int:
        return sum(x >= x_legend - 6 and y_top - 6 <= y <= y_top + legend_h + 6 for x, y in drawn)

    y_legend = min(corners, key=covered)  # the corner the lines leave free
    for i, s in enumerate(series):
        y0 = y_legend + 12 + 14 * i
        cv2.line(canvas, (x_legend, y0 - 4), (x_legend + 16, y0 - 4), s.color, 2, cv2.LINE_AA)
        _text(canvas, s.label, (x_legend + 20, y0))
    _text(canvas, title, (left, top - 9), scale=0.45, thickness=1)
    _text(canvas, xlabel, ((left + width - right - _text_width(xlabel)) // 2, height - 8))
    ylab = np.full((16, height, 3), 255, np.uint8)
    _text(ylab, ylabel, ((height - _text_width(ylabel)) // 2, 12))
    canvas[:, 2:18] = np.minimum(canvas[:, 2:18], np.rot90(ylab, 1)[:, :16])
    return canvas


def _caption(image: np.ndarray, text: str, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    from interpret.render import caption  # interpret imports zoo: import lazily

    band = caption(np.full((0, image.shape[1], 3), 255, np.uint8), text)
    if color != (0, 0, 0):
        dark = band.min(axis=2) < 128
        band[dark] = color
    return np.concatenate([image, band], axis=0)


def draw_curves(history: Sequence[dict[str, Any]], *, title: str = "",
                overfitting: Overfitting | None | bool = True) -> np.ndarray:
    """Loss and accuracy per epoch, training vs validation, with overfitting shaded and told.

    Args:
        history: the per-epoch dicts of :class:`zoo.training.TrainResult`.
        title: a caption above the plots (e.g. the model and dataset).
        overfitting: an :class:`Overfitting` to show, ``True`` to find it
            with :func:`find_overfitting`, ``False`` to show none.
    """
    from interpret.render import hstack  # interpret imports zoo: import lazily

    if not history:
        raise CnnvizError("no epochs to draw: the history is empty")
    found = find_overfitting(history) if overfitting is True else (overfitting or None)
    epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    marks = [(found.best_epoch, f"val. loss min (epoch {found.best_epoch})")] if found else []
    shade = found.best_epoch if found else None
    panels = []
    for key, label in (("loss", "loss"), ("acc", "accuracy")):
        series = [Series(f"train {label}", epochs, [h[f"train_{key}"] for h in history], TRAIN_COLOR),
                  Series(f"validation {label}", epochs, [h[f"val_{key}"] for h in history], VAL_COLOR)]
        panels.append(line_chart(series, title=label, xlabel="epoch", ylabel=label, marks=marks,
                                 shade_from=shade))
    image = hstack(panels, pad=6)
    if found:
        image = _caption(image, found.message(), MARK_COLOR)
    else:
        best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
        image = _caption(image, f"no overfitting flagged: validation loss lowest at epoch {epochs[best]} of "
                                f"{epochs[-1]}; final validation accuracy {100 * history[-1]['val_acc']:.2f}%")
    if title:
        image = np.concatenate([_caption(np.full((0, image.shape[1], 3), 255, np.uint8), title), image])
    return image


def draw_lr_range(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                  suggestion: float) -> np.ndarray:
    """The LR range test: loss against learning rate (log axis), the suggested rate marked."""
    chart = line_chart([Series("loss", lrs, losses, (190, 190, 190)),
                        Series("smoothed", lrs, smoothed, TRAIN_COLOR)],
                       title="LR range test", xlabel="learning rate", ylabel="training loss", log_x=True,
                       marks=[(suggestion, f"suggested {suggestion:.2g}")], size=(520, 320))
    return _caption(chart, f"suggested learning rate {suggestion:.3g}: a tenth of where the smoothed "
                           "loss is lowest, where it still falls steadily")


def draw_bars(values: dict[str, float], *, title: str, fmt: str = "{:.3g}", log: bool = False,
              color: tuple[int, int, int] = TRAIN_COLOR, width: int = 520) -> np.ndarray:
    """Horizontal bars, one per named value (per-layer gradient norms, dead fractions, ...).

    Example:
        >>> draw_bars({"conv1": 0.5, "fc": 0.1}, title="gradient norm").shape[1]
        520
    """
    if not values:
        raise CnnvizError(f"nothing to draw in {title!r}: no values")
    names = list(values)
    label_w = max(_text_width(n) for n in names) + 10
    row, top = 16, 24
    canvas = np.full((top + row * len(names) + 6, width, 3), 255, np.uint8)
    _text(canvas, title, (6, 16), scale=0.45)
    shown = [math.log10(v) if log and v > 0 else (v if not log else float("nan")) for v in values.values()]
    finite = [v for v in shown if math.isfinite(v)]
    low = min(min(finite), 0.0) if not log else min(finite) - 1 if finite else 0.0
    high = max(finite) if finite else 1.0
    span = (high - low) or 1.0
    bar_w = width - label_w - 70
    for i, (name, value, s) in enumerate(zip(names, values.values(), shown)):
        y = top + row * i
        _text(canvas, name, (6, y + 12))
        length = int(bar_w * (s - low) / span) if math.isfinite(s) else 0
        cv2.rectangle(canvas, (label_w, y + 3), (label_w + max(length, 1), y + row - 3), color, -1)
        _text(canvas, fmt.format(value), (label_w + length + 4, y + 12))
    return canvas


def draw_activation_stats(stats: Sequence[ActivationStats]) -> np.ndarray:
    """Sparsity and dead-unit fraction per activation layer, side by side."""
    from interpret.render import hstack  # interpret imports zoo: import lazily

    sparsity = draw_bars({s.name: s.sparsity for s in stats}, title="activation sparsity (outputs <= 0)",
                         fmt="{:.1%}", width=380)
    dead = draw_bars({s.name: s.dead_fraction for s in stats}, title="dead units (never > 0)",
                     fmt="{:.1%}", color=MARK_COLOR, width=380)
    return hstack([sparsity, dead], pad=8)


def draw_confusion(matrix: torch.Tensor, classes: Sequence[str], *, cell: int = 38) -> np.ndarray:
    """The confusion matrix: counts in cells coloured by the share of their true class (row).

    Example:
        >>> draw_confusion(torch.tensor([[5, 1], [0, 4]]), ["cat", "dog"]).dtype
        dtype('uint8')
    """
    from interpret.render import colorize  # interpret imports zoo: import lazily

    counts = matrix.detach().cpu().long().numpy()
    k = counts.shape[0]
    if counts.shape != (k, k) or len(classes) != k:
        raise CnnvizError(f"a confusion matrix for {len(classes)} classes must be {len(classes)}x{len(classes)}, "
                          f"got {tuple(counts.shape)}")
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    colors = colorize(np.concatenate([share, [[0.0] * (k - 1) + [1.0]]]), "viridis")[:k]  # pin the scale to 0..1
    labels = [f"{i} {name}" for i, name in enumerate(classes)]
    label_w = max(_text_width(t) for t in labels) + 12
    top = 46
    size = (top + k * cell + 8, label_w + k * cell + 8)
    canvas = np.full((*size, 3), 255, np.uint8)
    _text(canvas, "confusion matrix: rows true class, columns predicted", (6, 16), scale=0.45)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    _text(canvas, f"accuracy {100 * accuracy:.2f}% on {counts.sum():,} images", (6, 32))
    for j in range(k):
        _text(canvas, str(j), (label_w + j * cell + cell // 2 - 4, top - 4))
    for i in range(k):
        y = top + i * cell
        _text(canvas, labels[i], (6, y + cell // 2 + 4))
        for j in range(k):
            x = label_w + j * cell
            color = tuple(int(c) for c in colors[i, j])
            cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), color, -1)
            text = str(counts[i, j])
            ink = (0, 0, 0) if share[i, j] > 0.5 else (255, 255, 255)
            _text(canvas, text, (x + (cell - _text_width(text, 0.35)) // 2, y + cell // 2 + 4), scale=0.35,
                  color=ink)
    return canvas
