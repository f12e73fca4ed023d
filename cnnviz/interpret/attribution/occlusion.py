"""Occlusion sensitivity: slide a patch over the image and watch the class score drop.

The method the course presents first, and the one where speed matters: an
image of 224 px with a 16 px window at stride 8 needs 729 forward passes.
All windows of all images go through the model in full batches; the masks
are built by broadcasting, and the per-pixel map is assembled with one
scatter-add.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.occlusion(handle, images, window=56, stride=28).shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

from typing import Literal

import torch

from cnnviz.interpret.attribution.incremental import Incremental, OcclusionRows
from cnnviz.interpret.core.batching import auto_batch_size
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.removal import Fill, removed_pixels
from cnnviz.interpret.core.targets import Target, class_probabilities, pass_target, take, target_scores
from cnnviz.zoo.core import CnnvizError, PositiveInt
from cnnviz.zoo.handle import ModelHandle, forward_runner

def window_origins(size: int, window: int, stride: int) -> torch.Tensor:
    """Top-left coordinates of the windows along one axis (the last one flush with the edge)."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return torch.tensor(starts)


def window_masks(ys: torch.Tensor, xs: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Binary masks ``(N, 1, H, W)``, one per window origin ``(ys[k], xs[k])``, by broadcasting."""
    rows = torch.arange(height, device=ys.device)
    cols = torch.arange(width, device=xs.device)
    in_rows = (rows[None] >= ys[:, None]) & (rows[None] < ys[:, None] + window)
    in_cols = (cols[None] >= xs[:, None]) & (cols[None] < xs[:, None] + window)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None].float()


@method("occlusion", "attribution", "occlusion: how much the class score drops when a patch is hidden",
        group="perturbation", order=10)
def occlusion(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, window: PositiveInt | None = None,
              stride: PositiveInt | None = None, fill: Fill = "dataset_mean", score: Literal["prob", "logit"] = "prob",
              batch_size: PositiveInt | None = None, incremental: Incremental = "auto") -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus 2014).

    Each pixel gets the mean score drop over the windows covering it.

    Args:
        window: side of the square patch in pixels (default: a seventh of the model's input side,
            32 at 224 px, 4 at 28 px).
        stride: step between patches (default: half the window); windows flush with the right/bottom
            edge are added.
        fill: what a hidden pixel becomes: ``dataset_mean`` (default: the model's normalization mean, i.e.
            zero after normalization, as captum's ``Occlusion`` with its zero baseline on a normalized input;
            the same as ``gray`` on a model normalized around 0.5), ``black``, ``gray`` (Zeiler & Fergus's
            gray square), ``mean`` (the image's channel mean) or ``blur`` (a blurred copy).
        score: ``prob`` (softmax probability) or ``logit`` of the target.
        batch_size: occluded images per forward pass (default: sized to the device).
        incremental: recompute only what each window changes, from the clean image's activations:
            ``auto`` when measured faster, ``exact``, ``approximate`` (Krypton's bounded footprint,
            opt-in: on efficientnet_lite0 about twice as fast as exact, its maps only roughly exact's,
            Spearman 0.66-0.9) or ``off`` (every window a full forward pass).

    Returns:
        ``(B, 1, H, W)`` score drops: positive where hiding the pixels hurts the class.
    """
    _, _, height, width = images.shape
    window = window or max(1, handle.input_size // 7)
    stride = stride or max(1, window // 2)
    if not 1 <= window <= min(height, width):
        raise CnnvizError(f"window must be between 1 and {min(height, width)} pixels, got {window}")
    if score not in ("prob", "logit"):
        raise CnnvizError(f"score must be 'prob' or 'logit', got {score!r}")

    def scores(output: torch.Tensor, indices: object) -> torch.Tensor:
        return target_scores(handle, indices, class_probabilities(handle, output) if score == "prob" else output)

    batch = images.shape[0]
    indices = pass_target(handle, images, target)  # None: each image's class, read off its clean row below
    predicted = torch.zeros(batch, dtype=torch.long, device=images.device)
    oy, ox = window_origins(height, window, stride), window_origins(width, window, stride)
    grid_y, grid_x = torch.meshgrid(oy.to(images.device), ox.to(images.device), indexing="ij")
    ys, xs = grid_y.flatten(), grid_x.flatten()
    per_image = ys.numel()
    fills = removed_pixels(handle, images, fill)
    engine_batch = batch_size  # a batch the caller sets holds for the incremental engine too
    batch_size = batch_size or auto_batch_size(handle)

    # One stream of rows: first each clean image, then every (image, window), so batches are full and
    # span image boundaries, and the clean pass costs no batch of its own. Clean rows come first, so an
    # image's predicted class is known before any of its windows is scored.
    row_scores = torch.empty(batch * (1 + per_image), device=images.device)
    forward = forward_runner(handle, row_scores.numel(), batch_size)

    def full_rows(img: torch.Tensor, top: torch.Tensor, left: torch.Tensor, occluded: torch.Tensor) -> torch.Tensor:
        masks = window_masks(top, left, window, height, width) * occluded.view(-1, 1, 1, 1)
        return forward(torch.lerp(images[img], fills[img], masks))

    rows_forward = OcclusionRows(handle, images, fills, window, full_rows, incremental, batch_size, engine_batch)
    with torch.no_grad():
        for rows in rows_forward.spans(row_scores.numel(), desc="occlusion"):
            flat = torch.arange(rows.start, rows.stop, device=images.device)
            is_clean = flat < batch
            window_row = (flat - batch).clamp(min=0)  # clean rows borrow window 0, masked out below
            win = window_row % per_image
            img = torch.where(is_clean, flat, window_row // per_image)
            output = rows_forward(img, ys[win], xs[win], ~is_clean)
            if indices is None:
                predicted[flat[is_clean]] = output[is_clean].argmax(-1)
            row_target = take(predicted if indices is None else indices, img)
            row_scores[rows] = scores(output, row_target)
    clean, occluded = row_scores[:batch], row_scores[batch:].view(batch, per_image)

    # Spread each drop over its window and average where windows overlap.
    return spread_windows(clean[:, None] - occluded, ys, xs, window, height, width)


def spread_windows(values: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, window: int,
                   height: int, width: int) -> torch.Tensor:
    """Per-pixel mean of the ``(B, N)`` window values over the windows covering each pixel."""
    total = torch.zeros(values.shape[0], height * width, device=values.device)
    count = torch.zeros(1, height * width, device=values.device)
    offsets = torch.arange(window, device=values.device)
    pixel_rows = (ys[:, None] + offsets[None]).repeat_interleave(window, dim=1)
    pixel_cols = (xs[:, None] + offsets[None]).repeat(1, window)
    pixels = (pixel_rows * width + pixel_cols).flatten()  # (N * window^2,)
    total.index_add_(1, pixels, values.repeat_interleave(window * window, dim=1))
    count.index_add_(1, pixels, torch.ones(1, pixels.numel(), device=values.device))
    return (total / count.clamp(min=1)).view(-1, 1, height, width)
