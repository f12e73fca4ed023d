"""What is written beside an explanation: its caption and its JSON record, one schema for classifiers and dense
models, written by ``cnnviz explain`` and served by the explorer's downloads, so both describe a map the same way.

Every record has the same keys. A classifier's says which class is explained (``target``) and which the model
predicts (``predicted``), each with its probability; ``explained`` and ``score`` are null. A segmentation model's
or a detector's says what region or box is explained (``explained``) and its score; ``target`` and
``predicted`` are null (a dense model predicts no one class).

A statistic of the map that cannot be computed is null, never NaN, and ``map.undefined`` says why (a map that is
zero everywhere has no Gini index and no entropy); otherwise ``map.undefined`` is null. So every record is strict
JSON as it stands.

Example:
    >>> import torch
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.core import get_method
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> probs = torch.full((10,), 0.1)
    >>> record = explanation_record(handle, get_method("gradient"), {}, None, "shirt", probs, 3,
    ...                             torch.ones(1, 28, 28), 0.01, 1, "a.png", None)
    >>> record["target"]["name"], record["map"]["mean"], record["explained"], record["map"]["undefined"]
    ('Dress', 1.0, None, None)
    >>> flat = explanation_record(handle, get_method("gradient"), {}, None, "shirt", probs, 3,
    ...                           torch.zeros(1, 28, 28), 0.01, 1, "a.png", None)
    >>> flat["map"]["gini"], flat["map"]["undefined"]
    (None, 'the map is all zero: this method sees nothing to explain here')
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnviz.interpret.core import BoxScore, Method, RegionScore, explained_caption
from cnnviz.interpret.evaluate.complexity import entropy, gini
from cnnviz.zoo.handle import ModelHandle

DenseTarget = RegionScore | BoxScore
ALL_ZERO = "the map is all zero: this method sees nothing to explain here"
NOT_FINITE = "the map holds NaN or infinite values: its statistics cannot be computed"


def explanation_title(method: Method, handle: ModelHandle, image: str, probs: torch.Tensor | None,
                      explained: int | DenseTarget, score: float | None = None) -> str:
    """The caption of an explanation panel: method, model, image, and the prediction and the class explained
    (a classifier) or the region or box explained and its score (a dense model)."""
    if isinstance(explained, (RegionScore, BoxScore)):
        return (f"{method.name} | {handle.name} | {image}: explaining "
                f"{explained_caption(explained, handle.class_name)} (score {score:.3g})")
    predicted = int(probs.argmax())
    return (f"{method.name} | {handle.name} | {image}: predicted {handle.class_name(predicted)} "
            f"{probs[predicted]:.1%} | explaining {handle.class_name(explained)}")


def _class(handle: ModelHandle, probs: torch.Tensor, index: int) -> dict[str, Any]:
    return {"index": index, "name": handle.class_name(index), "probability": float(probs[index])}


def _number(value: torch.Tensor | float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def map_statistics(values: torch.Tensor) -> dict[str, Any]:
    """The statistics of a raw map a record carries: null where one cannot be computed, and ``undefined``
    saying why (else null).

    Example:
        >>> map_statistics(torch.tensor([[0.0, 2.0]]))["gini"], map_statistics(torch.zeros(2, 2))["entropy"]
        (0.5, None)
    """
    values = values.detach().double().cpu()
    finite = bool(values.isfinite().all())
    undefined = None if finite and bool((values != 0).any()) else ALL_ZERO if finite else NOT_FINITE
    return {"shape": list(values.shape), "min": _number(values.min()), "max": _number(values.max()),
            "mean": _number(values.mean()), "std": _number(values.std()) if values.numel() > 1 else 0.0,
            "mean_abs": _number(values.abs().mean()), "positive_fraction": float((values > 0).double().mean()),
            "gini": _number(gini(values)) if undefined is None else None,
            "entropy": _number(entropy(values)) if undefined is None else None, "undefined": undefined}


def explanation_record(handle: ModelHandle, method: Method, given: dict[str, Any], layer: str | None, image: str,
                       probs: torch.Tensor | None, explained: int | DenseTarget, maps: torch.Tensor, seconds: float,
                       count: int, png: str, npy: str | None, *, score: float | None = None) -> dict[str, Any]:
    """The JSON beside an explanation PNG: model, task, image, method, options (defaults filled in from the
    method's signature, then ``given``), what is explained, timing and the statistics of the raw map.

    Args:
        handle: the model explained.
        method: the registered method.
        given: the options the user set.
        layer: the layer asked for (None: the model's default, for methods that take one).
        image: the image's name.
        probs: a classifier's class probabilities on the image (None for a dense model).
        explained: the class index explained, or a dense model's region or box target.
        maps: the raw map of this image.
        seconds: how long the method ran.
        count: images in the call that took ``seconds``.
        png, npy: file names of the panel and the raw map (None: not written).
        score: a dense target's score on the image.
    """
    options = {name: p.default for name, p in method.options().items()}
    options.update(given)
    dense = isinstance(explained, (RegionScore, BoxScore))
    return {
        "model": handle.name, "task": handle.config.task, "device": str(handle.device), "image": image,
        "method": method.name, "layer": (layer or handle.default_layer) if method.uses_layer else None,
        "options": options,
        "target": None if dense else _class(handle, probs, explained),
        "predicted": None if dense else _class(handle, probs, int(probs.argmax())),
        "explained": explained_caption(explained, handle.class_name) if dense else None,
        "score": score if dense else None,
        "seconds": round(seconds, 4), "images_in_call": count,
        "map": map_statistics(maps),
        "png": png, "npy": npy,
    }
