"""Gradients of a target score with respect to the input pixels, batched.

The shared mechanism of vanilla gradients, SmoothGrad, integrated gradients
and guided backprop: they differ only in which inputs they send through and
how they combine the gradients.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable

import torch

from interpret.batching import auto_batch_size, chunks
from interpret.targets import Target, target_indices, target_scores
from zoo.handle import ModelHandle

ResolvedTarget = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


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
    :func:`interpret.targets.target_scores` checks the indices against that output).
    """
    if target is None or (callable(target) and not isinstance(target, (str, torch.Tensor))):
        return target
    return target_indices(handle, target, torch.empty(images.shape[0], 0, device=images.device))


def take(target: ResolvedTarget, rows: slice | torch.Tensor) -> ResolvedTarget:
    """The part of a resolved target that belongs to ``rows`` of the batch."""
    return target[rows] if isinstance(target, torch.Tensor) else target


def input_gradients(
    handle: ModelHandle,
    inputs: torch.Tensor,
    target: ResolvedTarget,
    *,
    batch_size: int | None = None,
    mode: Callable[[], AbstractContextManager] | None = None,
    desc: str | None = None,
) -> torch.Tensor:
    """d score / d input for every row of ``inputs``, in batches.

    Args:
        inputs: ``(N, C, H, W)`` pixels in [0, 1].
        target: per-row class indices ``(N,)`` or a callable on the output.
        mode: a context manager factory wrapped around each forward/backward
            (guided backprop passes its ReLU override here).
        desc: progress-bar label, shown when there are many batches.

    Returns:
        Gradients shaped like ``inputs``.
    """
    batch_size = batch_size or auto_batch_size(handle, backward=True)
    grads = torch.empty_like(inputs)
    for rows in chunks(inputs.shape[0], batch_size, desc=desc):
        chunk = inputs[rows].detach().requires_grad_(True)
        with torch.enable_grad(), (mode() if mode else nullcontext()):
            score = target_scores(handle, take(target, rows), handle(chunk)).sum()
            (grads[rows],) = torch.autograd.grad(score, chunk)
    return grads
