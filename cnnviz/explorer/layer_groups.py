"""The layer table as a network's stages: each stage (a block such as a ``ConvBlock`` or an ``MBConv``, or a
container of single layers such as a classifier head) with the layers inside it, and the layers a first look
can skip (BatchNorm, Identity) marked to be hidden.

A row is a stage when it is not a plain container (``Sequential``, ``ModuleList``, ``ModuleDict``) or when it
is one whose children are all single layers; the plain containers above the stages are headings.

Example:
    >>> rows = [{"name": "features", "type": "Sequential"}, {"name": "features.b1", "type": "ConvBlock"},
    ...         {"name": "features.b1.conv", "type": "Conv2d"}, {"name": "features.b1.bn", "type": "BatchNorm2d"},
    ...         {"name": "head", "type": "Sequential"}, {"name": "head.fc", "type": "Linear"}]
    >>> [(g["kind"], [r["name"] for r in g["rows"]]) for g in stages(rows)]  # doctest: +NORMALIZE_WHITESPACE
    [('heading', ['features']), ('stage', ['features.b1', 'features.b1.conv', 'features.b1.bn']),
     ('stage', ['head', 'head.fc'])]
    >>> [r["name"] for r in rows if skippable(r)]
    ['features.b1.bn']
"""

from __future__ import annotations

from typing import Any

CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
SKIPPABLE = ("BatchNorm", "Identity")  # type names a first look skips: they keep the shape and add no picture


def skippable(row: dict[str, Any]) -> bool:
    """Whether the layers page hides ``row`` until asked to show every layer."""
    return row["type"].startswith(SKIPPABLE)


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def stages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (the layer table, parents before children, named) in groups: ``{"kind": "heading" | "stage",
    "rows": [...]}``, a stage's rows being the stage and everything inside it."""
    named = [r for r in rows if r["name"]]
    children: dict[str, list[str]] = {}
    for row in named:
        children.setdefault(_parent(row["name"]), []).append(row["name"])
    leaf = lambda name: name not in children  # noqa: E731
    groups: list[dict[str, Any]] = []
    inside = None  # the stage being filled
    for row in named:
        name = row["name"]
        if inside is not None and (name + ".").startswith(inside + "."):
            groups[-1]["rows"].append(row)
            continue
        plain = row["type"] in CONTAINERS and not all(leaf(c) for c in children.get(name, []))
        inside = None if plain else name
        groups.append({"kind": "heading" if plain else "stage", "rows": [row]})
    return groups
