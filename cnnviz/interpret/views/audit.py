"""Drawing an audit (:mod:`interpret.audit`): the confusion matrix, the reliability diagram, each class's clusters
(mean map with its relevance box, prototypes with their maps), the embedding coloured by cluster, the concepts.

Drawing only: numbers, maps and images in, figures and uint8 pictures out. The images of the items shown are
looked up by the caller (``images``: item id -> ``(C, H, W)`` in [0, 1]).

Example:
    >>> import numpy as np
    >>> fig = reliability_diagram({"bins": [{"lo": 0.0, "hi": 0.5, "count": 2, "confidence": 0.4, "accuracy": 0.5},
    ...     {"lo": 0.5, "hi": 1.0, "count": 0, "confidence": None, "accuracy": None}], "ece": 0.1})
    >>> charts.to_array(fig).dtype
    dtype('uint8')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure

from cnnviz.interpret.views import charts
from cnnviz.interpret.views.pixels import TILE, caption, colorize, hstack, overlay, to_uint8, vstack

BOX_COLOR = (255, 40, 40)
PROTOTYPES_SHOWN = 4
CROPS_SHOWN = 6
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def confusion_matrix(confusion: Mapping[str, Any]) -> Figure:
    """The audit's confusion matrix (``audit.confusion``): counts, coloured by the share of each true class."""
    return charts.confusion(np.asarray(confusion["matrix"]), list(confusion["labels"]))


def reliability_diagram(calibration: Mapping[str, Any]) -> Figure:
    """Accuracy against confidence per bin (``audit.calibration``), the diagonal of perfect calibration, the
    gap shaded, and how many items each bin holds."""
    bins = calibration["bins"]
    fig, (ax, counts_ax) = charts.figure(720, 340, columns=2)
    width = [b["hi"] - b["lo"] for b in bins]
    left = [b["lo"] for b in bins]
    filled = [b for b in bins if b["count"]]
    ax.bar(left, [b["accuracy"] or 0.0 for b in bins], width=width, align="edge", color=charts.TRAIN_COLOR,
           edgecolor="white", label="accuracy")
    ax.bar([b["lo"] for b in filled], [b["confidence"] - b["accuracy"] for b in filled],
           bottom=[b["accuracy"] for b in filled], width=[b["hi"] - b["lo"] for b in filled], align="edge",
           color=charts.MARK_COLOR, alpha=0.35, label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--", label="calibrated")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"reliability: ECE {calibration['ece']:.3f}", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left")
    counts_ax.bar(left, [b["count"] for b in bins], width=width, align="edge", color=charts.MUTED_COLOR,
                  edgecolor="white")
    counts_ax.set(xlim=(0, 1), xlabel="confidence", ylabel="items")
    counts_ax.set_title("items per bin", fontsize=9, loc="left")
    return fig


def _tile(picture: np.ndarray, side: int = TILE) -> np.ndarray:
    return cv2.resize(to_uint8(picture), (side, side), interpolation=cv2.INTER_NEAREST)


def with_relevance_box(picture: np.ndarray, box: Sequence[float],
                       color: tuple[int, int, int] = BOX_COLOR) -> np.ndarray:
    """``picture`` with ``box`` (``[x0, y0, x1, y1]``, fractions of the image) outlined.

    Example:
        >>> with_relevance_box(np.zeros((10, 10, 3), np.uint8), [0.0, 0.0, 0.5, 0.5])[0, 0].tolist()
        [255, 40, 40]
    """
    out = to_uint8(picture).copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(round(v * s)) for v, s in zip(box, (w, h, w, h)))
    cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), color, 1)
    return out


def class_clusters(name: str, strategy: Mapping[str, Any], images: Mapping[Any, Any],
                   maps: Mapping[Any, np.ndarray]) -> np.ndarray:
    """One row per cluster of a class (``audit.classes[name]``): its mean map with the relevance box, then its
    prototypes, each with its own map over it.

    Args:
        name: the class.
        strategy: the class's entry of ``audit.classes``.
        images: item id -> ``(C, H, W)`` image in [0, 1], for the prototypes shown.
        maps: item id -> its ``(h, w)`` stored map.
    """
    rows = []
    for cluster in strategy["clusters"]:
        mean = _tile(with_relevance_box(colorize(np.asarray(cluster["mean_map"])), cluster["relevance_box"]))
        tiles = [caption(mean, f"cluster {cluster['id']}: {len(cluster['members'])} items")]
        for item in cluster["prototypes"][:PROTOTYPES_SHOWN]:
            if item in images:
                tiles.append(caption(_tile(overlay(images[item], maps[item])), str(item)))
        rows.append(hstack(tiles))
    title = caption(np.full((1, max(r.shape[1] for r in rows), 3), 255, np.uint8),
                    f"{name}: {len(rows)} strategies (eigengap k={strategy['eigengap']['k']}), "
                    f"accuracy {100 * strategy['accuracy']:.1f}% of {strategy['items']}")
    return vstack([title, *rows])


def embedding(name: str, strategy: Mapping[str, Any]) -> Figure:
    """The class's maps embedded in 2-D (``strategy['embedding']``), each point coloured by its cluster."""
    found = strategy["embedding"]
    xy = np.asarray(found["xy"], dtype=float).reshape(-1, 2)
    clusters = np.asarray(found["cluster"], dtype=int)
    fig, (ax,) = charts.figure(420, 380)
    for k in sorted(set(clusters.tolist())):
        chosen = clusters == k
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=8, color=PALETTE[k % len(PALETTE)], label=f"cluster {k}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{name}: maps embedded, by cluster", fontsize=9, loc="left")
    if len(clusters):
        ax.legend(fontsize=7, markerscale=2)
    return fig


def _crop(image: Any, box: Sequence[float]) -> np.ndarray:
    picture = to_uint8(image)
    h, w = picture.shape[:2]
    x0, y0, x1, y1 = (int(round(v * s)) for v, s in zip(box, (w, h, w, h)))
    return picture[y0:max(y0 + 1, y1), x0:max(x0 + 1, x1)]


def concepts(name: str, found: Sequence[Mapping[str, Any]], images: Mapping[Any, Any]) -> np.ndarray | None:
    """One row per concept of a class (``audit.classes[name]['concepts']``): its importance and its top crops.
    None when the class has no concepts."""
    rows = []
    for concept in found:
        crops = [_tile(_crop(images[c["item"]], c["box"])) for c in concept["crops"][:CROPS_SHOWN]
                 if c["item"] in images]
        label = caption(np.full((TILE, TILE, 3), 255, np.uint8),
                        f"concept {concept['id']}: importance {concept['importance']:.3f}")
        rows.append(hstack([label, *crops]))
    if not rows:
        return None
    return vstack([caption(np.full((1, max(r.shape[1] for r in rows), 3), 255, np.uint8), f"{name}: concepts"),
                   *rows])
