"""Charts with matplotlib: training curves, LR range test, bars, confusion matrix, loss curves, explanations.

Each function takes numbers and returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state, no GUI: the Agg canvas draws it). Text is
Unicode (DejaVu Sans ships with matplotlib), colour scales are perceptually
uniform (viridis) and numbered. :func:`to_array` gives the uint8 picture the
pixel sheets of :mod:`interpret.views.sheets` compose; :func:`save` writes PNG, SVG or
PDF, so a figure can go into a paper as vector graphics.

Example:
    >>> fig = line_chart([Series("loss", [1, 2, 3], [0.9, 0.5, 0.4])], title="t", xlabel="epoch", ylabel="loss")
    >>> to_array(fig).shape
    (300, 420, 3)
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, PercentFormatter

from cnnviz.zoo.core import CnnvizError, atomic_write
from cnnviz.zoo.train import ActivationStats, Overfitting, find_overfitting

FORMATS = ("png", "svg", "pdf")
ChartFormat = Literal["png", "svg", "pdf"]
COLORMAP = "viridis"
DPI = 100
TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
MARK_COLOR = "#d62728"  # overfitting, dead units, suggested rates
MUTED_COLOR = "#bebebe"
Color = str | tuple[int, int, int]


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label, x and y values, a colour (matplotlib name or 0-255 RGB)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: Color = TRAIN_COLOR


def figure(width: int, height: int, columns: int = 1) -> tuple[Figure, list[Any]]:
    """A ``width`` x ``height`` pixel figure with ``columns`` axes side by side, drawn by Agg."""
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, columns, squeeze=False)[0]
    return fig, list(axes)


def to_array(fig: Figure) -> np.ndarray:
    """The figure rendered as a uint8 ``(H, W, 3)`` RGB array at its own size.

    Example:
        >>> to_array(figure(200, 100)[0]).shape
        (100, 200, 3)
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[:, :, :3])


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for notebooks and web pages)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save(fig: Figure, path: str | Path, chart_format: ChartFormat | None = None) -> Path:
    """Write the figure as PNG, SVG or PDF (``chart_format``, else the suffix of ``path``), atomically.

    Returns:
        The path written: ``path`` with the format's suffix.

    Example:
        >>> import tempfile
        >>> fig = bars({"conv1": 0.5, "fc": 0.1}, title="gradient norm")
        >>> save(fig, Path(tempfile.mkdtemp()) / "norms", "svg").suffix
        '.svg'
    """
    path = Path(path)
    chosen = chart_format or path.suffix.lstrip(".").lower() or "png"
    if chosen not in FORMATS:
        raise CnnvizError(f"unknown figure format {chosen!r}: choose from {', '.join(FORMATS)}")
    path = path.with_suffix(f".{chosen}")
    metadata = {"Software": None} if chosen == "png" else {"Creator": None} if chosen == "svg" else {}
    return atomic_write(path, lambda f: fig.savefig(f, format=chosen, dpi=DPI, metadata=metadata))


def _color(color: Color) -> Any:
    return tuple(c / 255 for c in color) if isinstance(color, tuple) else color


def _finite(series: Sequence[Series], title: str) -> list[tuple[float, float]]:
    points = [(float(x), float(y)) for s in series for x, y in zip(s.x, s.y)
              if math.isfinite(float(x)) and math.isfinite(float(y))]
    if not points:
        raise CnnvizError(f"nothing to draw in {title!r}: no finite values")
    return points


def _lines(ax: Any, series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, log_x: bool = False,
           marks: Sequence[tuple[float, str]] = (), shade_from: float | None = None) -> None:
    points = _finite(series, title)
    if log_x and any(x <= 0 for x, _ in points):
        raise CnnvizError("a logarithmic axis needs positive x values")
    for s in series:
        few = len(s.x) <= 30  # few points: show each one
        ax.plot(s.x, s.y, color=_color(s.color), linewidth=2, label=s.label, marker="o" if few else None,
                markersize=4)
    if log_x:
        ax.set_xscale("log")
    if shade_from is not None:
        ax.axvspan(shade_from, max(x for x, _ in points), color=MARK_COLOR, alpha=0.1, linewidth=0)
    for x, label in marks:
        ax.axvline(x, color=MARK_COLOR, linestyle="--", linewidth=1.5)
        ax.annotate(label, (x, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color=MARK_COLOR, fontsize=8)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e6e6e6")
    ax.legend(fontsize=8, loc="best")


def line_chart(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, log_x: bool = False,
               marks: Sequence[tuple[float, str]] = (), shade_from: float | None = None,
               size: tuple[int, int] = (420, 300)) -> Figure:
    """A line chart: the lines, a legend, dashed vertical marks, an optional shaded region.

    Args:
        series: the lines.
        title, xlabel, ylabel: texts (any Unicode).
        log_x: logarithmic x axis (for learning rates).
        marks: ``(x, label)`` vertical dashed lines.
        shade_from: shade the plot right of this x (e.g. where overfitting starts).
        size: ``(width, height)`` in pixels.
    """
    fig, (ax,) = figure(*size)
    _lines(ax, series, title=title, xlabel=xlabel, ylabel=ylabel, log_x=log_x, marks=marks, shade_from=shade_from)
    return fig


def training_curves(history: Sequence[dict[str, Any]], *, title: str = "",
                    overfitting: Overfitting | None | bool = True) -> Figure:
    """Loss and accuracy per epoch, training vs validation, with overfitting shaded and told.

    Args:
        history: the per-epoch dicts of :class:`zoo.training.TrainResult`.
        title: a title above the plots (e.g. the model and dataset).
        overfitting: an :class:`~zoo.diagnostics.Overfitting` to show, ``True`` to find it
            with :func:`~zoo.diagnostics.find_overfitting`, ``False`` to show none.

    Example:
        >>> history = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "train_acc": 0.7, "val_acc": 0.72}]
        >>> to_array(training_curves(history)).dtype
        dtype('uint8')
    """
    if not history:
        raise CnnvizError("no epochs to draw: the history is empty")
    found = find_overfitting(history) if overfitting is True else (overfitting or None)
    epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    marks = [(found.best_epoch, f"val. loss min (epoch {found.best_epoch})")] if found else []
    fig, axes = figure(852, 350 + 20 * bool(title), columns=2)
    for ax, (key, label) in zip(axes, (("loss", "loss"), ("acc", "accuracy"))):
        series = [Series(f"train {label}", epochs, [h[f"train_{key}"] for h in history], TRAIN_COLOR),
                  Series(f"validation {label}", epochs, [h[f"val_{key}"] for h in history], VAL_COLOR)]
        _lines(ax, series, title=label, xlabel="epoch", ylabel=label, marks=marks,
               shade_from=found.best_epoch if found else None)
    if found:
        fig.supxlabel(found.message(), color=MARK_COLOR, fontsize=9)
    else:
        best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
        fig.supxlabel(f"no overfitting flagged: validation loss lowest at epoch {epochs[best]} of {epochs[-1]}; "
                      f"final validation accuracy {100 * history[-1]['val_acc']:.2f}%", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def lr_range(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float], suggestion: float) -> Figure:
    """The LR range test: loss against learning rate (log axis), the suggested rate marked."""
    fig, (ax,) = figure(520, 340)
    _lines(ax, [Series("loss", lrs, losses, MUTED_COLOR), Series("smoothed", lrs, smoothed, TRAIN_COLOR)],
           title="LR range test", xlabel="learning rate", ylabel="training loss", log_x=True,
           marks=[(suggestion, f"suggested {suggestion:.2g}")])
    fig.supxlabel(f"suggested learning rate {suggestion:.3g}: a tenth of where the smoothed loss is lowest, "
                  "where it still falls steadily", fontsize=8)
    return fig


def _bars(ax: Any, values: dict[str, float], *, title: str, fmt: str, log: bool, color: Color,
          share: bool = False) -> None:
    names = list(values)
    numbers = [float(v) for v in values.values()]
    shown = [v if (not log or v > 0) else float("nan") for v in numbers]
    ax.barh(range(len(names)), [0 if not math.isfinite(v) else v for v in shown], color=_color(color))
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()  # first layer on top
    if log and any(v > 0 for v in numbers):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide
    for i, v in enumerate(numbers):
        ax.annotate(fmt.format(v), (shown[i] if math.isfinite(shown[i]) else 0, i), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)
    ax.set_title(title, fontsize=10, loc="left")
    if share:  # fractions: the whole scale, so an all-zero row reads as zero
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.margins(x=0.15)


def bars(values: dict[str, float], *, title: str, fmt: str = "{:.3g}", log: bool = False,
         color: Color = TRAIN_COLOR, width: int = 520) -> Figure:
    """Horizontal bars, one per named value (per-layer gradient norms, dead fractions, ...).

    Example:
        >>> to_array(bars({"conv1": 0.5, "fc": 0.1}, title="gradient norm")).shape[1]
        520
    """
    if not values:
        raise CnnvizError(f"nothing to draw in {title!r}: no values")
    fig, (ax,) = figure(width, 60 + 18 * len(values))
    _bars(ax, values, title=title, fmt=fmt, log=log, color=color)
    return fig


def activation_bars(stats: Sequence[ActivationStats]) -> Figure:
    """Sparsity and dead-unit fraction per activation layer, side by side."""
    if not stats:
        raise CnnvizError("no activation layers to draw")
    fig, (left, right) = figure(760, 60 + 18 * len(stats), columns=2)
    _bars(left, {s.name: s.sparsity for s in stats}, title="activation sparsity (outputs ≤ 0)", fmt="{:.1%}",
          log=False, color=TRAIN_COLOR, share=True)
    _bars(right, {s.name: s.dead_fraction for s in stats}, title="dead units (never > 0)", fmt="{:.1%}",
          log=False, color=MARK_COLOR, share=True)
    return fig


def confusion(matrix: torch.Tensor | np.ndarray, classes: Sequence[str]) -> Figure:
    """The confusion matrix: counts in cells coloured by the share of their true class (row), with a scale.

    Example:
        >>> to_array(confusion(torch.tensor([[5, 1], [0, 4]]), ["cat", "dog"])).dtype
        dtype('uint8')
    """
    counts = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix).astype(np.int64)
    k = counts.shape[0]
    if counts.shape != (k, k) or len(classes) != k:
        raise CnnvizError(f"a confusion matrix for {len(classes)} classes must be {len(classes)}x{len(classes)}, "
                          f"got {tuple(counts.shape)}")
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = 160 + 38 * k
    fig, (ax,) = figure(side + 180, side)
    shown = ax.imshow(share, cmap=COLORMAP, vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="black" if share[i, j] > 0.5 else "white")
    ax.set_xticks(range(k), [str(j) for j in range(k)], fontsize=8)
    ax.set_yticks(range(k), [f"{i} {name}" for i, name in enumerate(classes)], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"confusion matrix: accuracy {100 * accuracy:.2f}% on {counts.sum():,} images", fontsize=9,
                 loc="left")
    fig.colorbar(shown, ax=ax, label="share of the true class", shrink=0.8)
    return fig


def explanation(image: torch.Tensor, values: torch.Tensor, title: str, *, colormap: str = COLORMAP,
                symmetric: bool = False, alpha: float = 0.5, percentile: float = 99.5) -> Figure:
    """The image, the map and the map over the image, with a numbered colour bar: a figure for papers.

    The values are clipped at their ``percentile`` as in :func:`interpret.views.sheets.explanation_panel`.

    Example:
        >>> fig = explanation(torch.rand(3, 32, 32), torch.randn(32, 32), "gradient", symmetric=True)
        >>> len(fig.axes)  # three pictures and the colour bar
        4
    """
    from cnnviz.interpret.views.pixels import map_range, to_uint8

    picture = to_uint8(image)
    array = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise CnnvizError(f"a map must be 2-D (or (1, H, W)), got shape {array.shape}")
    low, high = map_range(array, symmetric=symmetric, percentile=percentile)
    if high <= low:
        high = low + 1.0
    extent = (0, picture.shape[1], picture.shape[0], 0)
    fig, axes = figure(3 * 220 + 90, 260, columns=3)
    axes[0].imshow(picture)
    shown = axes[1].imshow(array, cmap=colormap, vmin=low, vmax=high, extent=extent, interpolation="bilinear")
    axes[2].imshow(picture)
    axes[2].imshow(array, cmap=colormap, vmin=low, vmax=high, extent=extent, alpha=alpha, interpolation="bilinear")
    for ax, name in zip(axes, ("image", "map", "map over the image")):
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.colorbar(shown, ax=list(axes), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig


LOSS_COLORS = {"total": "black", "style": MARK_COLOR, "content": TRAIN_COLOR, "tv": "#2ca02c"}


def loss_curves(history: dict[str, Sequence[float]], *, title: str, marks: Sequence[tuple[float, str]] = (),
                size: tuple[int, int] = (520, 320)) -> Figure:
    """Loss terms per optimization step on a log axis (style transfer: total, content, style, tv).

    Example:
        >>> fig = loss_curves({"total": [4.0, 2.0, 1.0], "tv": [0.1, 0.1, 0.05]}, title="losses")
        >>> fig.axes[0].get_yscale()
        'log'
    """
    series = [Series(name, list(range(1, len(values) + 1)), [v if v > 0 else float("nan") for v in values],
                     LOSS_COLORS.get(name, MUTED_COLOR)) for name, values in history.items()]
    fig, (ax,) = figure(*size)
    _lines(ax, series, title=title, xlabel="step", ylabel="loss", marks=marks)
    ax.set_yscale("log")
    return fig


@dataclass(frozen=True)
class Band:
    """One method's curve over images: the mean and a band (e.g. the 25th-75th percentile) at each x."""

    label: str
    x: Sequence[float]
    mean: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]


def faithfulness_curves(panels: dict[str, Sequence[Band]], *, title: str, xlabel: str = "fraction of pixels",
                        ylabel: str = "target probability", size_per_panel: tuple[int, int] = (360, 300)) -> Figure:
    """Deletion / insertion / ROAD curves side by side: per panel one line per method, its band shaded;
    methods coloured from viridis, the same colour in every panel.

    Example:
        >>> band = Band("gradcam", [0, 0.5, 1], [0.9, 0.3, 0.1], [0.8, 0.2, 0.0], [1.0, 0.4, 0.2])
        >>> to_array(faithfulness_curves({"deletion": [band]}, title="t")).shape
        (300, 360, 3)
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if not panels:
        raise CnnvizError("no curves to draw")
    labels = list(dict.fromkeys(b.label for bands in panels.values() for b in bands))
    palette = colormaps[COLORMAP]
    colors = {label: to_hex(palette(0.85 * i / max(1, len(labels) - 1))) for i, label in enumerate(labels)}
    fig, axes = figure(size_per_panel[0] * len(panels), size_per_panel[1], len(panels))
    for ax, (name, bands) in zip(axes, panels.items()):
        for band in bands:
            ax.fill_between(band.x, band.low, band.high, color=colors[band.label], alpha=0.18, linewidth=0)
        _lines(ax, [Series(b.label, b.x, b.mean, colors[b.label]) for b in bands], title=name, xlabel=xlabel,
               ylabel=ylabel)
    fig.suptitle(title, fontsize=10)
    return fig
