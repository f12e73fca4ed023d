"""Targets: which scalar of the model output a method explains.

A target is ``None`` (the predicted class), a class index, (part of) a class name, a
sequence of those (one per image), or a callable mapping the model output
``(B, K)`` to one score per image ``(B,)``. One code path then serves
logits, probabilities, channels and neurons. Segmentation and detection
outputs take callables too: their target kinds (a class over a region, a
box of a detector) are the callables of :mod:`interpret.core.dense_targets`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch

from cnnviz.zoo.core import CnnvizError, closest
from cnnviz.zoo.handle import ModelHandle

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
Target = Union[None, int, str, Sequence[Union[int, str]], torch.Tensor, ScoreFn]
ResolvedTarget = torch.Tensor | ScoreFn
SHOWN_CANDIDATES = 8  # class names listed when a part of a name is in several


def is_score_fn(target: Any) -> bool:
    """Whether ``target`` is a score function on the model output (rather than classes)."""
    return callable(target) and not isinstance(target, (str, torch.Tensor))


def class_index(handle: ModelHandle, target: int | str, num_classes: int | None = None) -> int:
    """The class index of an int or (part of) a class name, checked against the model: a whole name (any case)
    first, else the one class whose name contains the text; text that several names contain is refused with
    them.

    Example:
        >>> from cnnviz import zoo
        >>> lite0 = zoo.load("efficientnet_lite0", device="cpu")
        >>> class_index(lite0, "espresso"), class_index(lite0, "Egyptian")
        (967, 285)
    """
    count = num_classes or (len(handle.classes) if handle.classes else None)
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, (int, torch.Tensor)) and not isinstance(target, bool):
        index = int(target)
        if index < 0 or (count is not None and index >= count):
            raise CnnvizError(f"class index {index} is out of range: {handle.name} has classes 0..{(count or 1) - 1}")
        return index
    if isinstance(target, str):
        if not handle.classes:
            raise CnnvizError(f"{handle.name} has no class names: give the target as an index")
        return _named_class(handle, target)
    raise CnnvizError(f"a target is a class index or name, got {type(target).__name__}")


def _named_class(handle: ModelHandle, text: str) -> int:
    """The class a whole name (any case) names, else the only class whose name contains ``text``."""
    classes = handle.classes or []
    lowered = text.strip().lower()
    whole = [index for index, name in enumerate(classes) if name.lower() == lowered]
    part = [index for index, name in enumerate(classes) if lowered and lowered in name.lower()]
    found = whole or part
    if len(found) == 1 or whole:
        return found[0]
    if part:
        shown = ", ".join(repr(classes[i]) for i in part[:SHOWN_CANDIDATES])
        more = f" and {len(part) - SHOWN_CANDIDATES} more" if len(part) > SHOWN_CANDIDATES else ""
        raise CnnvizError(f"{text!r} is part of {len(part)} class names of {handle.name}: {shown}{more}; "
                          "give more of the name")
    raise CnnvizError(f"no class named {text!r} in {handle.name}{closest(text, classes)}")


def target_indices(handle: ModelHandle, target: Target, logits: torch.Tensor) -> torch.Tensor:
    """One class index per image ``(B,)``; ``None`` picks the predicted class."""
    if logits.dim() in (3, 4) and handle.config.task != "classification":
        kind = "a region (interpret.region_target, --region)" if logits.dim() == 4 else \
            "a detection (interpret.detection_target, --box)"
        raise CnnvizError(f"{handle.name} is a {handle.config.task} model: a class alone does not say what to "
                          f"explain; give {kind}")
    if logits.dim() != 2:
        raise CnnvizError(f"{handle.name} returns an output of shape {tuple(logits.shape)}, not (batch, classes) "
                          "logits: pass output= (--output) to pick them, or give a callable target")
    batch, num_classes = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.argmax(-1)
    if isinstance(target, torch.Tensor) and target.dim() > 0:
        target = target.tolist()
    if isinstance(target, (list, tuple)):
        if len(target) not in (1, batch):
            raise CnnvizError(f"{len(target)} targets for {batch} images: give one target, or one per image")
        indices = [class_index(handle, t, num_classes) for t in target]
        indices = indices * batch if len(indices) == 1 else indices
    else:
        indices = [class_index(handle, target, num_classes)] * batch  # type: ignore[arg-type]
    return torch.tensor(indices, device=logits.device)


def target_scores(handle: ModelHandle, target: Target, output: torch.Tensor) -> torch.Tensor:
    """The score per image ``(B,)`` that a method differentiates or maximizes."""
    if is_score_fn(target):
        scores = target(output)
        if scores.shape != output.shape[:1]:
            raise CnnvizError(f"a target callable must return one score per image {tuple(output.shape[:1])}, "
                              f"got {tuple(scores.shape)}")
        return scores
    indices = target_indices(handle, target, output.detach())
    return output.gather(1, indices[:, None])[:, 0]


def class_probabilities(handle: ModelHandle, output: torch.Tensor) -> torch.Tensor:
    """The model output as probabilities: a softmax over the class axis, dim 1 of logits ``(B, K)`` and of
    per-pixel scores ``(B, K, H, W)``; a detector's packed detections already hold probabilities.

    Example:
        >>> handle = ModelHandle(torch.nn.Identity(), mean=(0.0,), std=(1.0,))
        >>> class_probabilities(handle, torch.zeros(1, 4, 2, 2))[0, :, 0, 0]
        tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    return output if handle.config.task == "detection" else output.softmax(1)


def require_classifier(handle: ModelHandle, what: str) -> None:
    """Refuse, in one line, to run ``what`` (which reads class labels) on a segmentation model or detector.

    Example:
        >>> handle = ModelHandle(torch.nn.Identity(), mean=(0.0,), std=(1.0,))
        >>> require_classifier(handle, "an attack")
    """
    if handle.config.task != "classification":
        raise CnnvizError(f"{what} works on classifiers, and {handle.name} is a {handle.config.task} model: "
                          "explain it with a region or box target instead")


def resolve_target(handle: ModelHandle, images: torch.Tensor, target: Target) -> ResolvedTarget:
    """Fix the target on the clean images: class indices ``(B,)``, or the callable.

    For methods that send altered copies of each image through the model
    (noise, interpolation, masks): the copies keep the class fixed here. Only
    the predicted class (``None``) costs a forward pass.
    """
    if target is None:
        with torch.no_grad():
            return handle(images).argmax(-1)
    return pass_target(handle, images, target)  # type: ignore[return-value]


def pass_target(handle: ModelHandle, images: torch.Tensor, target: Target) -> ResolvedTarget | None:
    """The target for a method that runs each image through the model once, without an extra forward pass.

    Names and lists become class indices ``(B,)``; ``None`` stays ``None``, so
    each batch's own forward pass picks its predicted class (and
    :func:`target_scores` checks the indices against that output).
    """
    if target is None or is_score_fn(target):
        return target  # type: ignore[return-value]
    return target_indices(handle, target, torch.empty(images.shape[0], 0, device=images.device))


def take(target: ResolvedTarget, rows: slice | torch.Tensor) -> ResolvedTarget:
    """The part of a resolved target that belongs to ``rows`` of the batch."""
    return target[rows] if isinstance(target, torch.Tensor) else target
