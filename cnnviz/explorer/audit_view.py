"""What the audit's pages show, shared by the explorer's data view (``/m/MODEL/data``) and the static report
(``audit.html``, ``cnnviz gallery --audit``): an audit's report (``audit.json``, :mod:`interpret.audit`) and its
per-item predictions turned into what the templates draw (the confusion matrix's cells, the reliability diagram,
the embedding's points), the selections of items a page lists (a confusion cell, a class right or wrong, a
confidence band, a cluster, a flag) and the figures every page shows (an item with its map, a cluster's mean
map, a concept's crop), each named once (:func:`figure_name`).

The two front ends differ only in their :class:`Links`: the explorer links to its URLs, the static report to the
files it writes.

Example:
    >>> from cnnviz.interpret.audit import Items
    >>> items = Items(["a.png", "b.png", "c.png"], ["cat", "cat", "dog"], ["cat", "dog", "dog"], np.array([.9, .8, .6]))
    >>> select(items, Selection(label="cat", correct=False))
    [1]
    >>> Selection(label="cat", predicted="dog").describe()
    'label cat, predicted dog'
    >>> select(items, Selection(low=0.7), order="confidence")
    [1, 0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import numpy as np

from cnnviz.explorer.errors import NotFound
from cnnviz.interpret.audit import Items
from cnnviz.zoo.core import CnnvizError

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # a cluster's colour, by its id (matplotlib's tab10)
SHOWN = 60  # items a list shows at once (a page of them)
EMBEDDING_POINTS = 2000  # points of a class's embedding drawn (every one a link)
FIGURE = re.compile(r"item-(?P<row>\d+)|mean-(?P<klass>\d+)-(?P<cluster>\d+)|crop-(?P<cclass>\d+)-(?P<concept>\d+)-"
                    r"(?P<crop>\d+)")
FIGURE_NAMES = r"(item-\d+|mean-\d+-\d+|crop-\d+-\d+-\d+)"  # the same, as a request's field checks it
ORDERS = ("confidence", "-confidence", "item")


@dataclass(frozen=True)
class Row:
    """One item's prediction: its row in the run's arrays, its id (a path under a folder, or an index), its label,
    the predicted class and the model's probability of it."""

    row: int
    item: str | int
    label: str
    predicted: str
    confidence: float

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


@dataclass(frozen=True)
class Selection:
    """Which items a list shows: any of a label, a predicted class, right or wrong, a confidence band
    ``[low, high]``, the members of a class's cluster (``label`` and ``cluster``) or of a
    flag (its rank from 1)."""

    label: str | None = None
    predicted: str | None = None
    correct: bool | None = None
    low: float | None = None
    high: float | None = None
    cluster: int | None = None
    flag: int | None = None

    def describe(self) -> str:
        """The selection in words (a list's heading)."""
        parts = []
        if self.flag is not None:
            parts.append(f"flag {self.flag}")
        if self.label is not None:
            parts.append(f"class {self.label}, cluster {self.cluster}" if self.cluster is not None
                         else f"label {self.label}")
        if self.predicted is not None:
            parts.append(f"predicted {self.predicted}")
        if self.correct is not None:
            parts.append("right" if self.correct else "wrong")
        if self.low is not None or self.high is not None:
            parts.append(f"confidence {self.low or 0:.2f} to {1 if self.high is None else self.high:.2f}")
        return ", ".join(parts) or "every item"

    def given(self) -> dict[str, Any]:
        """The fields set, by name (a query string's)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def key(self) -> str:
        """The selection as text that names it alone (a static page's name is made from it).

        Example:
            >>> Selection(label="T-shirt/top", correct=False).key()
            'label=T-shirt%2Ftop&correct=False'
        """
        return urlencode(self.given())


def members(report: dict[str, Any], selection: Selection) -> set[str | int] | None:
    """The items of the cluster or flag ``selection`` names (None: it names neither)."""
    if selection.flag is not None:
        flags = report.get("flags") or []
        if not 1 <= selection.flag <= len(flags):
            raise CnnvizError(f"flag {selection.flag} is not one of this audit's: it has flags 1 to {len(flags)}"
                              if flags else f"flag {selection.flag}: this audit raised no flag")
        return set(flags[selection.flag - 1]["members"])
    if selection.cluster is not None:
        klass = class_of(report, selection.label)
        clusters = {c["id"]: c for c in klass.get("clusters") or []}
        if selection.cluster not in clusters:
            raise CnnvizError(f"class {selection.label} has no cluster {selection.cluster}; its clusters: "
                              f"{', '.join(str(k) for k in clusters) or 'none'}")
        return set(clusters[selection.cluster]["members"])
    return None


def select(items: Items, selection: Selection, report: dict[str, Any] | None = None,
           order: str = "item") -> list[int]:
    """The rows of ``items`` (an audit's, :class:`interpret.audit.Items`) that ``selection`` picks, in ``order``
    (``confidence``: least confident first, ``-confidence``: most confident first, or ``item``: as the run holds
    them)."""
    picked = members(report or {}, selection)
    rows = items.select(label=None if selection.cluster is not None else selection.label,
                        predicted=selection.predicted, correct=selection.correct,
                        low=0.0 if selection.low is None else selection.low,
                        high=1.0 if selection.high is None else selection.high).tolist()
    if picked is not None:
        rows = [r for r in rows if items.ids[r] in picked]
    if order in ("confidence", "-confidence"):
        rows.sort(key=lambda r: float(items.confidence[r]) * (1 if order == "confidence" else -1))
    return rows


def class_of(report: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The report of class ``name``; an unknown name names nothing (404), said with the classes there are."""
    classes = report.get("classes") or {}
    if name not in classes:
        raise NotFound(f"no class {name!r} in this audit; its classes: {', '.join(classes) or 'none'}")
    return classes[name]


class Links(Protocol):
    """Where a page's links and pictures lead: the explorer's URLs or the static report's files."""

    def overview(self) -> str: ...
    def items(self, selection: Selection) -> str: ...
    def klass(self, name: str) -> str: ...
    def item(self, row: Row) -> str: ...
    def figure(self, name: str) -> str: ...


def figure_name(kind: str, *numbers: int) -> str:
    """The name of a figure: ``item-ROW`` (an item with its map), ``mean-CLASS-CLUSTER`` (a cluster's mean map) or
    ``crop-CLASS-CONCEPT-RANK`` (a concept's crop), by class index.

    Example:
        >>> figure_name("mean", 3, 1), FIGURE.fullmatch("mean-3-1")["cluster"]
        ('mean-3-1', '1')
    """
    return "-".join([kind, *(str(int(n)) for n in numbers)])


def confusion_cells(report: dict[str, Any], links: Links) -> list[dict[str, Any]]:
    """The confusion matrix's rows (true classes) of cells, each with its count, its share of the row (the
    shade) and the link to its items."""
    labels = report["confusion"]["labels"]
    rows = []
    for true, counts in zip(labels, report["confusion"]["matrix"]):
        total = max(1, sum(counts))
        rows.append({"label": true, "total": sum(counts), "cells": [
            {"predicted": predicted, "count": count, "share": count / total, "diagonal": true == predicted,
             "link": links.items(Selection(label=true, predicted=predicted)) if count else None}
            for predicted, count in zip(labels, counts)]})
    return rows


def reliability(report: dict[str, Any], links: Links, width: int = 260, height: int = 200) -> dict[str, Any]:
    """The reliability diagram as the template draws it in SVG: one bar per non-empty bin (its accuracy, at its
    confidence range), the diagonal of perfect calibration, and each bar's link to the items of its band."""
    bins = report["calibration"]["bins"]
    bars = []
    for b in bins:
        if not b["count"]:
            continue
        bars.append({"x": b["lo"] * width, "w": max(1.0, (b["hi"] - b["lo"]) * width - 1),
                     "y": (1 - b["accuracy"]) * height, "h": b["accuracy"] * height,
                     "gap_y": (1 - max(b["accuracy"], b["confidence"])) * height,
                     "gap_h": abs(b["confidence"] - b["accuracy"]) * height, **b,
                     "link": links.items(Selection(low=b["lo"], high=b["hi"]))})
    return {"width": width, "height": height, "bars": bars, "ece": report["calibration"]["ece"],
            "ticks": [0, 0.25, 0.5, 0.75, 1]}


def embedding(klass: dict[str, Any], rows: dict[str | int, Row], links: Links, side: int = 320) -> dict[str, Any]:
    """A class's embedding as SVG points (at most :data:`EMBEDDING_POINTS`), coloured by cluster, each a link to
    its item."""
    found = klass.get("embedding") or {}
    xy = np.asarray(found.get("xy") or [], dtype=float).reshape(-1, 2)
    if not len(xy):
        return {"side": side, "points": []}
    low, high = xy.min(0), xy.max(0)
    scaled = 8 + (side - 16) * (xy - low) / np.where(high > low, high - low, 1.0)
    points = []
    for member, (x, y), cluster in list(zip(found["members"], scaled, found["cluster"]))[:EMBEDDING_POINTS]:
        row = rows.get(member)
        points.append({"x": round(float(x), 1), "y": round(float(side - y), 1), "cluster": cluster,
                       "colour": PALETTE[int(cluster) % len(PALETTE)], "item": member,
                       "link": links.item(row) if row is not None else None})
    return {"side": side, "points": points}


def overview(report: dict[str, Any], rows: Sequence[Row], links: Links) -> dict[str, Any]:
    """What the overview page shows: the model and data, accuracy, the confusion matrix, the reliability
    diagram, the most confident mistakes, the least confident right predictions, the classes and the flags."""
    by_item = {r.item: r for r in rows}
    listed = lambda entries: [by_item[e["item"]] for e in entries if e["item"] in by_item]  # noqa: E731
    classes = [{"name": name, "items": c["items"], "accuracy": c["accuracy"], "link": links.klass(name),
                "clusters": len(c.get("clusters") or []), "flags": sum(f["class"] == name for f in report["flags"]),
                "wrong": links.items(Selection(label=name, correct=False))}
               for name, c in report["classes"].items()]
    return {"report": report, "confusion": confusion_cells(report, links), "calibration": reliability(report, links),
            "mistakes": listed(report["mistakes"]), "unsure": listed(report["unsure_correct"]), "classes": classes,
            "flags": flag_rows(report, links), "links": links}


def flag_rows(report: dict[str, Any], links: Links, name: str | None = None) -> list[dict[str, Any]]:
    """The flags ranked (of class ``name`` only when given), each with its rank, above or below the threshold,
    and the link to its members."""
    threshold = report.get("threshold")
    return [{**flag, "rank": rank, "raised": threshold is None or flag["score"] >= threshold,
             "link": links.items(Selection(flag=rank)), "class_link": links.klass(flag["class"])}
            for rank, flag in enumerate(report["flags"], 1) if name is None or flag["class"] == name]


def class_page(report: dict[str, Any], name: str, rows: Sequence[Row], links: Links) -> dict[str, Any]:
    """What a class's page shows: its accuracy, its clusters (mean map, prototypes, relevance box, members), its
    embedding, its concepts with their crops, and its flags."""
    klass = class_of(report, name)
    by_item = {r.item: r for r in rows}
    index = klass["index"]
    clusters = [{**c, "mean": links.figure(figure_name("mean", index, c["id"])),
                 "colour": PALETTE[int(c["id"]) % len(PALETTE)],
                 "prototype_rows": [by_item[p] for p in c["prototypes"] if p in by_item],
                 "link": links.items(Selection(label=name, cluster=c["id"]))}
                for c in klass.get("clusters") or []]
    concepts = [{**c, "pictures": [{"src": links.figure(figure_name("crop", index, c["id"], rank)),
                                    "row": by_item.get(crop["item"])}
                                   for rank, crop in enumerate(c.get("crops") or [])]}
                for c in klass.get("concepts") or []]
    return {"report": report, "name": name, "klass": klass, "clusters": clusters, "concepts": concepts,
            "embedding": embedding(klass, by_item, links), "flags": flag_rows(report, links, name), "links": links,
            "right": links.items(Selection(label=name, correct=True)),
            "wrong": links.items(Selection(label=name, correct=False))}


def items_page(report: dict[str, Any], rows: Sequence[Row], items: Items, selection: Selection, links: Links, *,
               order: str = "item", offset: int = 0, limit: int = SHOWN) -> dict[str, Any]:
    """What a list of items shows: the selection in words, how many, and one page of them (``rows``: the
    :class:`Row` of each of ``items``)."""
    found = select(items, selection, report, order)
    return {"report": report, "selection": selection, "title": selection.describe(), "total": len(found),
            "shown": [rows[r] for r in found[offset:offset + limit]], "offset": offset, "limit": limit, "order": order,
            "links": links,
            "classes": list(report["confusion"]["labels"])}


def crop_box(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """A concept crop's box ``[x0, y0, x1, y1]`` (fractions of the image) in whole pixels of an image of
    ``height`` x ``width``, at least one pixel each way.

    Example:
        >>> crop_box([0.25, 0.0, 0.75, 0.5], 28, 28)
        (7, 0, 21, 14)
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    left, top = int(np.floor(x0 * width)), int(np.floor(y0 * height))
    right, bottom = max(left + 1, int(np.ceil(x1 * width))), max(top + 1, int(np.ceil(y1 * height)))
    return left, top, min(right, width), min(bottom, height)


def parse_figure(name: str, report: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What a figure's name asks for: ``("item", {"row"})``, ``("mean", {"map"})`` or ``("crop", {"item",
    "box"})``; a name that names nothing of this audit is refused."""
    found = FIGURE.fullmatch(name)
    if found is None:
        raise CnnvizError(f"figure {name!r}: figures are named item-ROW, mean-CLASS-CLUSTER or "
                          "crop-CLASS-CONCEPT-RANK")
    parts = {k: int(v) for k, v in found.groupdict().items() if v is not None}
    if "row" in parts:
        if parts["row"] >= report["data"]["items"]:
            raise CnnvizError(f"figure {name!r}: the audit has items 0 to {report['data']['items'] - 1}")
        return "item", parts
    index = parts.get("klass", parts.get("cclass"))
    klass = next((c for c in report["classes"].values() if c["index"] == index), None)
    if klass is None:
        raise CnnvizError(f"figure {name!r}: no class {index} in this audit")
    if "cluster" in parts:
        cluster = next((c for c in klass.get("clusters") or [] if c["id"] == parts["cluster"]), None)
        if cluster is None:
            raise CnnvizError(f"figure {name!r}: class {index} has no cluster {parts['cluster']}")
        return "mean", {"map": np.asarray(cluster["mean_map"], dtype=np.float32)}
    concept = next((c for c in klass.get("concepts") or [] if c["id"] == parts["concept"]), None)
    crops = (concept or {}).get("crops") or []
    if not parts["crop"] < len(crops):
        raise CnnvizError(f"figure {name!r}: class {index} has no concept {parts['concept']} crop {parts['crop']}")
    return "crop", crops[parts["crop"]]

