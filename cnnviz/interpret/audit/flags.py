"""Flags: the strategies of a class that look like a shortcut (a tag, a border, a watermark), ranked.

The first kind of flag is a strategy whose relevance sits in a small, fixed part
of the image across its members, away from where the rest of the class puts
it. A candidate strategy is a group of a class's SpRAy clusters; it is scored
against the rest of the class on relevance *shares* (maps normalised to unit
mass, positive part only), so the score depends neither on the method's scale
nor on the map's size, the class or the mark:

- ``place``: where the group puts relevance that the rest does not: the
  smallest set of cells holding half the positive part of (group's mean map -
  rest's mean map); ``area`` is its share of the image;
- ``own_share``: the median, over the group's images, of each image's share of
  its positive relevance inside the place ("fixed across its members");
  ``rest_share``: the mean of the same over the rest of the class;
- ``concentration = 1 - area / own_share``: 0 when the members put no more
  relevance there than a uniform map would, near 1 for a small place that holds
  much of it ("small");
- ``separation = 1 - rest_share / own_share``: 0 when the rest puts as much
  there, 1 when it puts none ("away from the rest");
- ``distinctness = 1 - conductance`` of the group in SpRAy's k-nearest-neighbour
  graph (the share of its edges that leave it): 1 for a strategy that is its own
  component, lower for one cut out of a continuum;
- ``score = concentration * separation * distinctness``, in [0, 1].

Clusters whose places coincide (each holds at least ``MERGE_SHARE`` of what the
other holds in the other's place) are one strategy: SpRAy's eigengap often
splits one shortcut into two or three clusters, so they are scored and flagged
together. Each cluster belongs to one flag at most: the best-scoring group.

The score reads where relevance lies, so it needs maps that resolve a small mark: pixel attributions (input x
gradient, the gradient) kept at 14 x 14 or finer. On maps from a coarse layer (Grad-CAM at a 7 x 7 layer) or
pooled to 7 x 7, every cluster is "a small fixed place" and honest part-based strategies score as high as a tag
(bench/audit_shortcut.py, BENCHMARKS.md).

Example:
    >>> from cnnviz.interpret.audit.strategies import class_strategies
    >>> maps = np.random.default_rng(0).random((60, 8, 8)).astype(np.float32) * 0.1
    >>> maps[:, 2:6, 2:6] += 1.0          # the class: relevance on the object, in the middle
    >>> maps[:20, 0, 7] += 30.0            # a third of it: relevance on a corner tag instead
    >>> flags = shortcut_flags({"cat": class_strategies(maps, list(range(60)), embed=0)})
    >>> flags[0].cls, flags[0].items, flags[0].score > DEFAULT_THRESHOLD
    ('cat', 20, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.interpret.audit.strategies import ClassStrategies, relevance_box, relevance_region
from cnnviz.zoo.core import CnnvizError

DEFAULT_THRESHOLD = 0.5
MERGE_SHARE = 0.5  # clusters merge when each holds at least half as much of its relevance in the other's place


@dataclass
class Flag:
    """One suspected shortcut.

    Attributes:
        cls: the class's name.
        clusters: the ids of the class's clusters that make up the strategy.
        members: the item ids of the images of those clusters.
        score: ``concentration * separation * distinctness`` in [0, 1] (see the module docstring).
        items: how many images.
        evidence: the measurements behind the score (``concentration``, ``separation``, ``area``,
            ``rest_share``, ``relevance_box``, ``class_share``, ``consistency``).
    """

    cls: str
    clusters: list[int]
    members: list[Any]
    score: float
    items: int
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The flag as JSON-ready data, under the schema's key ``class``."""
        return {"class": self.cls, "clusters": list(self.clusters), "score": round(self.score, 6),
                "members": list(self.members), "items": self.items, "evidence": self.evidence}


def _member_shares(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Each map's share of its positive relevance inside ``region`` (0 for a map with none)."""
    positive = np.clip(maps, 0.0, None)
    totals = positive.reshape(len(maps), -1).sum(1)
    return np.where(totals > 0, positive[:, region].sum(1) / np.where(totals > 0, totals, 1.0), 0.0)


def _conductance(affinity: Any, inside: np.ndarray) -> float:
    """The share of the group's graph edges that leave it (of the smaller side's): 0 for a separate component."""
    if affinity is None:
        return 0.0
    cut = float(affinity[inside][:, ~inside].sum())
    volume = min(float(affinity[inside].sum()), float(affinity[~inside].sum()))
    return cut / volume if volume > 0 else 0.0


def _place(strategies: ClassStrategies, inside: np.ndarray) -> np.ndarray:
    """Where a group puts relevance that the rest of its class does not: the half-mass region of the
    positive part of (group's mean map - rest's mean map)."""
    return relevance_region(strategies.normalized[inside].mean(0) - strategies.normalized[~inside].mean(0))


def _score_group(strategies: ClassStrategies, group: list[int]) -> tuple[float, dict[str, Any]]:
    inside = np.isin(strategies.labels, group)
    if inside.all() or not inside.any():
        return 0.0, {}
    region = _place(strategies, inside)
    if not region.any():
        return 0.0, {}
    area = float(region.mean())
    own = float(np.median(_member_shares(strategies.normalized[inside], region)))
    rest = float(np.mean(_member_shares(strategies.normalized[~inside], region)))
    concentration = float(np.clip(1.0 - area / own, 0.0, 1.0)) if own > 0 else 0.0
    separation = float(np.clip(1.0 - rest / own, 0.0, 1.0)) if own > 0 else 0.0
    conductance = _conductance(strategies.affinity, inside)
    box = relevance_box(np.where(region, strategies.normalized[inside].mean(0), 0.0))
    evidence = {"concentration": round(concentration, 6), "separation": round(separation, 6),
                "distinctness": round(1.0 - conductance, 6), "area": round(area, 6), "own_share": round(own, 6),
                "rest_share": round(rest, 6), "relevance_box": [round(v, 6) for v in box],
                "class_share": round(float(inside.mean()), 6)}
    return concentration * separation * (1.0 - conductance), evidence


def _candidate_groups(strategies: ClassStrategies) -> list[list[int]]:
    """For each cluster, the clusters whose distinctive relevance lies where its own does (itself included)."""
    ids = [c.id for c in strategies.clusters]
    places = [_place(strategies, strategies.labels == c) if len(ids) > 1 else None for c in ids]
    held = [[float(_member_shares(strategies.normalized[strategies.labels == c], place).mean())
             if place is not None else 0.0 for place in places] for c in ids]  # held[j][i]: cluster j in place i
    groups = []
    for i in range(len(ids)):
        group = [ids[j] for j in range(len(ids))
                 if j == i or (held[j][i] >= MERGE_SHARE * held[i][i] and held[i][j] >= MERGE_SHARE * held[j][j])]
        if group not in groups:
            groups.append(group)
    return groups


def shortcut_flags(strategies: dict[str, ClassStrategies], *, threshold: float = DEFAULT_THRESHOLD,
                   keep_below: bool = False) -> list[Flag]:
    """Ranked suspects: strategies whose relevance sits in a small fixed place away from the rest of the class.

    Args:
        strategies: each class's :func:`class_strategies`, by class name.
        threshold: the score a flag needs (``DEFAULT_THRESHOLD``: concentration and separation
            both at about 0.7 or more).
        keep_below: also return the best candidate groups under the threshold (for reports and the
            control), still ranked.

    Returns:
        Flags, highest score first; each cluster in one flag at most.
    """
    if not 0.0 <= threshold <= 1.0:
        raise CnnvizError(f"the flag threshold is a score in [0, 1], got {threshold}")
    flags = []
    for name, result in strategies.items():
        scored = []
        for group in _candidate_groups(result):
            score, evidence = _score_group(result, group)
            if evidence:
                scored.append((score, group, evidence))
        scored.sort(key=lambda s: (-s[0], s[1]))
        used: set[int] = set()
        for score, group, evidence in scored:
            if used & set(group) or (score < threshold and not keep_below):
                continue
            used |= set(group)
            members = [item for c in result.clusters if c.id in group for item in c.members]
            flags.append(Flag(name, sorted(group), members, score, len(members), evidence))
    flags.sort(key=lambda f: (-f.score, f.cls, f.clusters))
    return flags
