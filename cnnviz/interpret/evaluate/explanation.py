"""One recipe, "explain these images with this method and record it", that ``cnnviz explain``, the explorer and
the gallery all call: the maps, each image's record (:mod:`.explanation_json`) and what drawing needs.

A classifier is explained in one call over the batch; a segmentation model or a detector (or a classifier asked
for a ``region`` or ``box``) one image at a time, each image with its own region or box target
(:func:`interpret.dense_target`), so each record's ``seconds`` is the time of the call that made its map.

Example:
    >>> import torch
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.core import get_method
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> images = torch.rand(2, 1, 28, 28)
    >>> found = explain_one(handle, get_method("gradient"), images, "Bag", names=["a", "b"])
    >>> tuple(found.maps.shape), found.records[1]["target"]["name"], found.records[1]["png"]
    ((2, 1, 28, 28), 'Bag', 'b-gradient.png')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cnnviz.interpret.core import (BoxScore, Method, RegionScore, attribution_map, class_index, dense_target)
from cnnviz.interpret.evaluate.explanation_json import DenseTarget, explanation_record, explanation_title
from cnnviz.zoo.models import unpack_detections
from cnnviz.zoo.core import safe_name
from cnnviz.zoo.handle import ModelHandle

clock: Callable[[], float] = time.perf_counter  # what a record's seconds are read from (a test pins it)


@dataclass
class Explanation:
    """One method's maps of a batch, with each image's record and what the front ends draw.

    Attributes:
        method: the method run.
        images: the ``(B, C, H, W)`` images explained.
        maps: the method's raw maps, as it returns them.
        flat: the ``(B, H, W)`` maps drawn (:func:`interpret.core.attribution_map`).
        records: each image's JSON record.
        titles: each image's panel caption.
        targets: what each image explains: a class index, or a dense model's region or box target.
        detections: a detector's ``(N, 6)`` detections of each image on the CPU (to draw beside a box), else None.
        detail: the method's full result (``Method.detail``) when asked for and the method has one.
    """

    method: Method
    images: torch.Tensor
    maps: torch.Tensor
    flat: torch.Tensor
    records: list[dict[str, Any]]
    titles: list[str]
    targets: list[int | DenseTarget]
    detections: list[torch.Tensor | None]
    detail: Any = None


def call_options(method: Method, layer: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``method`` is called with: ``options``, and ``layer`` where it takes one and one is
    given (several CAM layers: comma-separated)."""
    return {**options, **({"layer": layer} if method.uses_layer and layer is not None else {})}


def _timed(method: Method, handle: ModelHandle, images: torch.Tensor, target: Any, kwargs: dict[str, Any],
           detail: bool) -> tuple[Any, float]:
    start = clock()
    result = (method.detail if detail and method.detail else method.fn)(handle, images, target, **kwargs)
    return result, clock() - start


def explains_region(handle: ModelHandle, target: Any = None, region: Any = None, box: Any = None) -> bool:
    """Whether an explanation reads a region or a box rather than a class: a segmentation model or a detector,
    a ``region`` or ``box`` asked for, or a region or box target given."""
    return (handle.config.task != "classification" or region is not None or box is not None
            or isinstance(target, (RegionScore, BoxScore)))


def explain_one(handle: ModelHandle, method: Method, images: torch.Tensor, target: Any = None, *,
                names: Sequence[str] | None = None, files: Sequence[str] | None = None, layer: str | None = None,
                options: dict[str, Any] | None = None, region: Sequence[float] | None = None,
                box: int | None = None, probs: torch.Tensor | None = None, detail: bool = False,
                npy: bool = True) -> Explanation:
    """Explain ``images`` with ``method`` and record it, as ``cnnviz explain`` writes it and the explorer serves it.

    Args:
        handle: the model.
        method: a registered method.
        images: ``(B, C, H, W)`` prepared images in [0, 1].
        target: a class index or name (None: each image's predicted class), or for a dense model the class of a
            region (see :func:`interpret.dense_target`), or a region or box target already built.
        names: the images' names for the records and captions (default ``image``).
        files: each image's file stem (default ``NAME-METHOD``): the record names ``STEM.png`` and ``STEM.npy``,
            cleaned by :func:`zoo.safe_name` as ``cnnviz explain``'s output folder cleans every name.
        layer: the layer, for methods that take one (None: the model's default).
        options: the method's options as the user set them.
        region: a dense model's box ``(x0, y0, x1, y1)`` to explain (the class: ``target``).
        box: a detector's detection to explain, from 1, best first.
        probs: a classifier's ``(B, K)`` class probabilities, when already computed.
        detail: also keep the method's full result (``Method.detail``), where it has one.
        npy: whether the raw map is written beside the panel (the record names it).
    """
    options = dict(options or {})
    kwargs = call_options(method, layer, options)
    names = list(names) if names is not None else ["image"] * images.shape[0]
    stems = list(files) if files is not None else [f"{n}-{method.name}" for n in names]

    def record(i: int, image_probs: torch.Tensor | None, explained: int | DenseTarget, maps: torch.Tensor,
               seconds: float, count: int, score: float | None = None) -> dict[str, Any]:
        return explanation_record(handle, method, options, layer, names[i], image_probs, explained, maps, seconds,
                                  count, safe_name(f"{stems[i]}.png"), safe_name(f"{stems[i]}.npy") if npy else None,
                                  score=score)

    if explains_region(handle, target, region, box):
        return _explain_dense(handle, method, images, target, names, kwargs, region, box, record)
    if isinstance(target, str):
        target = class_index(handle, target)
    if probs is None:
        with torch.no_grad():
            probs = handle(images).softmax(-1)
    result, seconds = _timed(method, handle, images, target, kwargs, detail)
    found = result if detail and method.detail else None
    maps = found.maps if found is not None else result
    explained = [int(p.argmax()) if target is None else int(target) for p in probs]
    return Explanation(method, images, maps, attribution_map(maps),
                       [record(i, probs[i], explained[i], maps[i], seconds, len(names)) for i in range(len(names))],
                       [explanation_title(method, handle, names[i], probs[i], explained[i]) for i in range(len(names))],
                       list(explained), [None] * len(names), found)


def _explain_dense(handle: ModelHandle, method: Method, images: torch.Tensor, target: Any, names: list[str],
                   kwargs: dict[str, Any], region: Sequence[float] | None, box: int | None,
                   record: Callable[..., dict[str, Any]]) -> Explanation:
    """Each image on its own, with its own region or box target."""
    maps, records, titles, targets, found = [], [], [], [], []
    for i, image in enumerate(images.split(1)):
        explained = target if isinstance(target, (RegionScore, BoxScore)) else \
            dense_target(handle, image, target, region=region, box=box)
        with torch.no_grad():
            output = handle(image)
        score = float(explained(output)[0])
        found.append(unpack_detections(output)[0].detach().cpu() if isinstance(explained, BoxScore) else None)
        result, seconds = _timed(method, handle, image, explained, kwargs, False)
        maps.append(result)
        records.append(record(i, None, explained, result[0], seconds, 1, score))
        titles.append(explanation_title(method, handle, names[i], None, explained, score))
        targets.append(explained)
    stacked = torch.cat(maps)
    return Explanation(method, images, stacked, attribution_map(stacked), records, titles, targets, found)
