"""Scoring attribution methods over many images: every metric, per image, then merged and summarized.

:func:`evaluate_images` streams a list of image sources in batches (a
progress bar in a terminal), computes the maps of each method (or reads
them, for maps made elsewhere), scores each map with the chosen metrics
and returns one :class:`Record` per image and method, with the per-step
curves. Under ``torchrun`` each process takes whole batches round-robin
(as the atlas does) and the records are gathered on every rank, so the
merged table equals a single-process run exactly: every random draw is
seeded per image or per batch, never by the process.

:func:`summary_rows` turns records into one row per method and metric:
mean, spread, a bootstrap interval, and the paired difference to the
random baseline with its own interval.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> makers = {"random": random_maker(), "gradcam": method_maker(interpret.gradcam)}
    >>> result = evaluate_images(handle, ["coffee"], makers, metrics=("gini", "entropy"), progress=False)
    >>> [(r.method, sorted(r.scores)) for r in result]
    [('random', ['entropy', 'gini']), ('gradcam', ['entropy', 'gini'])]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from cnnviz.interpret.core.distributed import agree, current, shard_batches
from cnnviz.interpret.core.targets import Target, require_classifier
from cnnviz.interpret.evaluate.complexity import entropy, gini
from cnnviz.interpret.evaluate.faithfulness import DeletionCanvas, deletion_insertion, random_maps, randomization_check
from cnnviz.interpret.evaluate.map_sources import as_maps, load_map
from cnnviz.interpret.evaluate.road import FRACTIONS, road
from cnnviz.interpret.evaluate.robustness import infidelity, max_sensitivity
from cnnviz.interpret.evaluate.similarity import Measure
from cnnviz.interpret.evaluate.statistics import summarize
from cnnviz.zoo.core import (
    AtLeast, CnnvizError, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, check_call,
)
from cnnviz.zoo.data import expand_sources, load_images
from cnnviz.zoo.handle import ModelHandle, job

# Deletion names what a deleted pixel becomes; the default is the one that tells methods from a random map
# (BENCHMARKS.md, "Which deletion separates methods from random"): deleting to black does not.
DELETIONS: dict[str, DeletionCanvas] = {"deletion_blur": "blur", "deletion_mean": "dataset_mean",
                                        "deletion_black": "black"}
METRICS = ("insertion", *DELETIONS, "road", "infidelity", "sensitivity", "randomization", "gini", "entropy")
DEFAULT_METRICS = ("insertion", "deletion_blur", "randomization", "gini", "entropy")
ALIASES = {"deletion": "deletion_black"}  # the name of deletion to black before the canvas was a choice
# Which way is better, for reading the table: -1 lower, +1 higher, 0 neither (a property, not a quality);
# randomization similarities, not listed, are better lower.
BETTER = {**{name: -1 for name in DELETIONS}, "insertion": 1, "road": 1, "infidelity": -1, "sensitivity": -1,
          "gini": 0, "entropy": 0}
Explainer = Callable[..., torch.Tensor]
# Ranges declared once, for the Python options below and the CLI flags of ``cnnviz evaluate``.
CurveSteps = Annotated[int, AtLeast(2)]
Resamples = Annotated[int, AtLeast(100)]


@dataclass(frozen=True)
class MapMaker:
    """Where one row of the table gets its maps.

    Attributes:
        maps: ``maps(handle, images, target, rows) -> maps`` for the images of dataset rows ``rows``.
        explain: the method to re-run (randomization, max-sensitivity), or None when there is none
            (a random baseline, maps read from files).
        why_not: why the re-running metrics are undefined without ``explain``.
    """

    maps: Callable[[ModelHandle, torch.Tensor, Target, list[int]], torch.Tensor]
    explain: Explainer | None = None
    why_not: str = ""


def method_maker(explain: Explainer) -> MapMaker:
    """Maps computed by ``explain(handle, images, target)`` (a registered method or any callable)."""
    return MapMaker(lambda handle, images, target, rows: explain(handle, images, target), explain)


def random_maker(seed: int = 0) -> MapMaker:
    """The baseline: uniform random maps, seeded per image (see :func:`interpret.evaluate.faithfulness.random_maps`)."""
    def draw(handle: ModelHandle, images: torch.Tensor, target: Target, rows: list[int]) -> torch.Tensor:
        return torch.cat([random_maps(images[i:i + 1], seed, first=r) for i, r in enumerate(rows)])

    return MapMaker(draw, None, "a random map does not depend on the model")


def file_maker(paths: Sequence[str | Path]) -> MapMaker:
    """Maps read from ``.npy`` files, ``paths[i]`` for dataset row ``i``."""
    def read(handle: ModelHandle, images: torch.Tensor, target: Target, rows: list[int]) -> torch.Tensor:
        return torch.cat([as_maps(load_map(paths[r]), images[i:i + 1]) for i, r in enumerate(rows)])

    return MapMaker(read, None, "maps read from files: there is no method to re-run")


@dataclass(frozen=True)
class EvaluationOptions:
    """Settings of every metric (each metric's function documents its own).

    Attributes:
        steps: deletion/insertion curve points after the start.
        randomize: blocks re-initialized, top down (None: all).
        measures: similarity measures of the randomization check.
        absolute: compare |map| in the randomization check.
        fractions: ROAD removal fractions.
        road_noise: ROAD imputation noise.
        samples: perturbations per image for infidelity and max-sensitivity.
        noise: infidelity perturbation standard deviation.
        radius: max-sensitivity noise radius.
        seed: seed of every private generator.
        batch_size: model batch size inside the metrics (default: automatic).
    """

    steps: CurveSteps = 32
    randomize: NonNegativeInt | None = None
    measures: tuple[Measure, ...] = ("spearman",)
    absolute: bool = True
    fractions: tuple[float, ...] = FRACTIONS
    road_noise: NonNegativeFloat = 0.01
    samples: PositiveInt = 16
    noise: PositiveFloat = 0.05
    radius: PositiveFloat = 0.02
    seed: int = 0
    batch_size: PositiveInt | None = None

    def __post_init__(self) -> None:
        check_call(type(self), vars(self))


@dataclass
class Record:
    """One image scored with one method's map.

    Attributes:
        index: the image's row in the dataset.
        image: its name.
        method: the row of the table.
        target: the class explained; ``probability`` its probability on the clean image.
        scores: metric name -> value (NaN where undefined; ``notes`` says why).
        notes: metric name -> why its value is undefined.
        curves: name -> list of values (deletion/insertion per step, ROAD per fraction, randomization per block).
    """

    index: int
    image: str
    method: str
    target: int
    probability: float
    scores: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """The metric names, each known, in the order given, without repeats (``deletion`` is ``deletion_black``)."""
    metrics = [ALIASES.get(m, m) for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise CnnvizError(f"unknown metric {unknown[0]!r}: choose from {', '.join(METRICS)}")
    if not metrics:
        raise CnnvizError("give at least one metric")
    return tuple(dict.fromkeys(metrics))


def _set(records: list[Record], name: str, values: torch.Tensor, reasons: Sequence[str | None] = ()) -> None:
    for i, record in enumerate(records):
        value = float(values[i])
        record.scores[name] = value
        reason = reasons[i] if i < len(reasons) else None
        if math.isnan(value):
            record.notes[name] = reason or "undefined"


def _undefined(records: list[Record], names: Sequence[str], why: str) -> None:
    for record in records:
        for name in names:
            record.scores[name] = math.nan
            record.notes[name] = why


def randomization_names(measures: Sequence[str]) -> list[str]:
    """Score names of the randomization check: each measure after the top block and after the cascade."""
    return [f"{m}_{when}" for m in measures for when in ("top", "cascade")]


def score_batch(handle: ModelHandle, images: torch.Tensor, names: Sequence[str], rows: list[int], method: str,
                maker: MapMaker, target: Target, metrics: Sequence[str],
                options: EvaluationOptions) -> list[Record]:
    """The records of one batch of images for one method (computing only; nothing is written)."""
    require_classifier(handle, "the evaluation of maps by class")
    with torch.no_grad():
        probs = handle(images).softmax(-1)
    if target is None:
        indices = probs.argmax(-1)
    elif isinstance(target, int):
        indices = torch.full((images.shape[0],), target, device=probs.device)
    else:
        raise CnnvizError("evaluation takes one class index for every image, or None for each one's prediction")
    records = [Record(r, names[i], method, int(indices[i]), float(probs[i, indices[i]])) for i, r in enumerate(rows)]
    maps = as_maps(maker.maps(handle, images, indices, rows), images)
    seed = options.seed * 1_000_003 + rows[0]  # per batch: shards draw what a single run draws
    curve_metrics = [m for m in metrics if m in DELETIONS] or (["deletion_blur"] if "insertion" in metrics else [])
    for deletion in curve_metrics:  # insertion rides along with the first deletion's pass
        curves = deletion_insertion(handle, images, maps, indices, steps=options.steps,
                                    deletion_to=DELETIONS[deletion], batch_size=options.batch_size)
        for name, values, auc in ((deletion, curves.deletion, curves.deletion_auc),
                                  ("insertion", curves.insertion, curves.insertion_auc)):
            if name in metrics and name not in records[0].scores:
                _set(records, name, auc, curves.undefined)
                for i, record in enumerate(records):
                    record.curves[name] = values[i].tolist()
    if "road" in metrics:
        result = road(handle, images, maps, indices, fractions=options.fractions, noise=options.road_noise,
                      seed=seed, batch_size=options.batch_size)
        _set(records, "road", result.combined)
        for i, record in enumerate(records):
            record.curves["road_morf"] = result.most_relevant_first[i].tolist()
            record.curves["road_lerf"] = result.least_relevant_first[i].tolist()
    if "infidelity" in metrics:
        _set(records, "infidelity", infidelity(handle, images, maps, indices, samples=options.samples,
                                               noise=options.noise, seed=seed, batch_size=options.batch_size))
    for name, measure in (("gini", gini), ("entropy", entropy)):
        if name in metrics:
            _set(records, name, measure(maps), ["the map is zero everywhere"] * len(records))
    rerun = [m for m in ("sensitivity", "randomization") if m in metrics]
    if rerun and maker.explain is None:
        names_undefined = (["sensitivity"] if "sensitivity" in rerun else []) + (
            randomization_names(options.measures) if "randomization" in rerun else [])
        _undefined(records, names_undefined, maker.why_not)
        return records
    if "sensitivity" in metrics:
        _set(records, "sensitivity", max_sensitivity(handle, images, maker.explain, indices, samples=options.samples,
                                                     radius=options.radius, seed=seed,
                                                     batch_size=options.batch_size))
    if "randomization" in metrics:
        check = randomization_check(handle, images, maker.explain, indices, seed=options.seed,
                                    max_steps=options.randomize, measures=options.measures,
                                    absolute=options.absolute)
        for measure, steps in check.scores.items():
            for when, values, reasons in (("top", steps[0], check.undefined[0]),
                                          ("cascade", steps[-1], check.undefined[-1])):
                _set(records, f"{measure}_{when}", values, reasons)
            for i, record in enumerate(records):
                record.curves[f"randomization_{measure}"] = [float(step[i]) for step in steps]
        for record in records:
            record.curves["randomization_layers"] = list(check.layers)  # type: ignore[list-item]
    return records


def _gather(records: list[Record]) -> list[Record]:
    group = current()
    if group.world == 1:
        return records
    parts: list[Any] = [None] * group.world
    dist.all_gather_object(parts, records)
    return [record for part in parts for record in part]


def evaluate_images(handle: ModelHandle, sources: Sequence[str | Path], makers: dict[str, MapMaker],
                    target: Target = None, *, metrics: Sequence[str] = DEFAULT_METRICS,
                    options: EvaluationOptions = EvaluationOptions(), batch_size: int = 8,
                    progress: bool = True) -> list[Record]:
    """Score each method's maps on every image of ``sources``, in batches; sharded under ``torchrun``.

    Args:
        handle: the model.
        sources: image files, folders and sample names (folders are expanded, sorted).
        makers: table row name -> :class:`MapMaker` (see :func:`method_maker`, :func:`random_maker`,
            :func:`file_maker`).
        target: one class index for all images, or None for each image's predicted class.
        metrics: names from :data:`METRICS`.
        options: the metrics' settings.
        batch_size: images loaded and scored together.
        progress: a progress bar over batches (rank 0, in a terminal).

    Returns:
        The records of every rank, ordered by image, then by the order of ``makers``.
    """
    metrics = check_metrics(metrics)
    if batch_size < 1:
        raise CnnvizError(f"the batch size must be at least 1, got {batch_size}")
    files = expand_sources(sources)
    group = current()
    count = agree(len(files), group, "the number of images")
    order = {name: i for i, name in enumerate(makers)}
    records: list[Record] = []
    batches = shard_batches(count, batch_size, group)
    bar = tqdm(batches, desc="evaluate", unit="batch", leave=False,
               disable=True if not progress or not group.leader or len(batches) < 2 else None)
    curve_rows = 2 * (options.steps + 1) * max(1, sum(m in DELETIONS for m in metrics)) \
        if {"insertion", *DELETIONS} & set(metrics) else 0
    with job(handle, sum(len(rows) for rows in batches) * len(makers) * curve_rows):  # compile="auto" sees it all
        for rows in bar:
            named = load_images([files[r] for r in rows], channels=handle.in_channels)
            images = handle.prepare([image for _, image in named])
            names = [name for name, _ in named]
            for method, maker in makers.items():
                records.extend(score_batch(handle, images, names, rows, method, maker, target, metrics, options))
    return sorted(_gather(records), key=lambda r: (r.index, order[r.method]))


def better(name: str) -> int:
    """-1 when lower is better, +1 when higher is, 0 for a property (randomization: lower similarity)."""
    return BETTER.get(name, -1)


def score_names(records: Sequence[Record]) -> list[str]:
    """The score columns present, in the order they first appear."""
    return list(dict.fromkeys(name for record in records for name in record.scores))


def _beats(direction: int, low: float, high: float) -> bool | None:
    """Whether the paired difference's interval lies wholly on the better side of zero (None: no better side)."""
    if direction == 0 or math.isnan(low) or math.isnan(high):
        return None
    return bool(low > 0) if direction > 0 else bool(high < 0)


def summary_rows(records: Sequence[Record], *, baseline: str | None = "random", level: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per method and score: mean, std, bootstrap interval, and the paired difference to
    ``baseline`` (same images) with its interval, where the baseline is among the records; ``beats_baseline``
    says whether that interval lies wholly on the better side of zero."""
    methods = list(dict.fromkeys(r.method for r in records))
    by_method = {m: sorted((r for r in records if r.method == m), key=lambda r: r.index) for m in methods}
    rows = []
    for method in methods:
        for name in score_names(by_method[method]):
            values = torch.tensor([r.scores.get(name, math.nan) for r in by_method[method]], dtype=torch.float64)
            row: dict[str, Any] = {"method": method, "metric": name, "better": better(name)}
            row.update(summarize(values, level=level, resamples=resamples, seed=seed).as_dict())
            notes = sorted({r.notes[name] for r in by_method[method] if name in r.notes})
            row["notes"] = "; ".join(notes)
            if baseline in by_method and method != baseline and name in score_names(by_method[baseline]):
                base = torch.tensor([r.scores.get(name, math.nan) for r in by_method[baseline]], dtype=torch.float64)
                difference = summarize(values - base, level=level, resamples=resamples, seed=seed)
                if difference.count:
                    row.update({"vs_baseline_mean": difference.mean, "vs_baseline_low": difference.low,
                                "vs_baseline_high": difference.high,
                                "beats_baseline": _beats(better(name), difference.low, difference.high)})
            rows.append(row)
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    return sorted(rows, key=lambda row: metrics.index(row["metric"]))  # stable: methods keep their order
