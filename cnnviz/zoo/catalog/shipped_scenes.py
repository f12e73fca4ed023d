"""The shipped scene models (``fashion_seg``, ``fashion_det``) as their logs and weights describe them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cnnviz.zoo.catalog.registry import Builder, register
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import WEIGHTS_DIR, load_weights
from cnnviz.zoo.train.log import TrainingLog

MakeHandle = Callable[[tuple[float, ...], tuple[float, ...], tuple[str, ...]], ModelHandle]


def shipped_scene_model(name: str, make_handle: MakeHandle, weights: str | Path | None = "pretrained") -> ModelHandle:
    """Model ``name`` as shipped: normalization and classes from its log in ``zoo/weights``, and its weights
    (``"pretrained"``: the shipped file; a path: other weights; None: random).

    Example:
        >>> from cnnviz.zoo.models.fashion_segmenter import seg_handle
        >>> shipped_scene_model("fashion_seg", seg_handle, weights=None).classes[0]
        'background'
    """
    path = WEIGHTS_DIR / f"{name}-log.json"
    if not path.is_file():
        raise CnnvizError(f"the {name} log is missing ({path}): retrain it with cnnviz train --model {name}")
    log = TrainingLog.read(path)
    handle = make_handle(tuple(log.normalization.mean), tuple(log.normalization.std), tuple(log.classes))
    if weights is not None:
        load_weights(handle.model, WEIGHTS_DIR / f"{name}.pt" if weights == "pretrained" else weights, what=name)
    return handle.eval()


def register_scene_model(name: str, summary: str, make_handle: MakeHandle) -> Builder:
    """Register shipped scene model ``name`` (weights and log in ``zoo/weights``); returns its builder."""
    def build(weights: str | Path | None = "pretrained") -> ModelHandle:
        return shipped_scene_model(name, make_handle, weights)

    build.__doc__ = f"The shipped {name} (or its architecture with other or random weights)."
    return register(name, summary, lambda: WEIGHTS_DIR / f"{name}.pt")(build)
