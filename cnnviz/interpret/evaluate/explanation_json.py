"""What is written beside an explanation: its caption and its JSON record, shared by ``cnnviz explain`` and
the explorer's downloads so both describe a map the same way.

Example:
    >>> import torch
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.core import get_method
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> probs = torch.full((10,), 0.1)
    >>> record = explanation_record(handle, get_method("gradient"), {}, None, "shirt", probs, 3,
    ...                             torch.ones(1, 28, 28), 0.01, 1, "a.png", None)
    >>> record["target"]["name"], record["map"]["mean"]
    ('Dress', 1.0)
"""

from __future__ import annotations

from typing import Any

import torch

from cnnviz.interpret.core import Method
from cnnviz.interpret.evaluate.complexity import entropy, gini
from cnnviz.zoo.handle import ModelHandle


def explanation_title(method: Method, handle: ModelHandle, image: str, probs: torch.Tensor, explained: int) -> str:
    """The caption of an explanation panel: method, model, image, prediction and the class explained."""
    predicted = int(probs.argmax())
    return (f"{method.name} | {handle.name} | {image}: predicted {handle.class_name(predicted)} "
            f"{probs[predicted]:.1%} | explaining {handle.class_name(explained)}")


def explanation_record(handle: ModelHandle, method: Method, given: dict[str, Any], layer: str | None, image: str,
                       probs: torch.Tensor, explained: int, maps: torch.Tensor, seconds: float, count: int,
                       png: str, npy: str | None) -> dict[str, Any]:
    """The JSON beside an explanation PNG: model, image, target, method, options (defaults filled in from the
    method's signature, then ``given``), timing and the statistics of the raw map.

    Args:
        handle: the model explained.
        method: the registered method.
        given: the options the user set.
        layer: the layer asked for (None: the model's default, for methods that take one).
        image: the image's name.
        probs: the model's class probabilities on the image.
        explained: the class index explained.
        maps: the raw map of this image.
        seconds: how long the method ran.
        count: images in the call that took ``seconds``.
        png, npy: file names of the panel and the raw map (None: not written).
    """
    options = {name: p.default for name, p in method.options().items()}
    options.update(given)
    predicted = int(probs.argmax())
    values = maps.detach().double().cpu()
    return {
        "model": handle.name, "device": str(handle.device), "image": image, "method": method.name,
        "layer": (layer or handle.default_layer) if method.uses_layer else None, "options": options,
        "target": {"index": explained, "name": handle.class_name(explained), "probability": float(probs[explained])},
        "predicted": {"index": predicted, "name": handle.class_name(predicted), "probability": float(probs[predicted])},
        "seconds": round(seconds, 4), "images_in_call": count,
        "map": {"shape": list(values.shape), "min": float(values.min()), "max": float(values.max()),
                "mean": float(values.mean()), "std": float(values.std()) if values.numel() > 1 else 0.0,
                "mean_abs": float(values.abs().mean()), "positive_fraction": float((values > 0).double().mean()),
                "gini": float(gini(values)), "entropy": float(entropy(values))},
        "png": png, "npy": npy,
    }
