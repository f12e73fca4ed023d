"""RISE: the class score averaged over random masks, each weighted by the pixels it kept.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.rise(handle, images, "espresso", masks=16).shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.removal import Fill, removed_pixels
from cnnviz.interpret.core.targets import Target, class_probabilities, pass_target, take, target_indices, target_scores
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle, forward_runner

Score = Literal["prob", "sigmoid", "logit"]


def rise_masks(count: int, size: tuple[int, int], *, cells: int = 7, keep: float = 0.5,
               generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """RISE's random masks ``(count, 1, H, W)`` in [0, 1] (Petsiuk et al. 2018, section 3.2).

    A ``cells x cells`` grid of cells kept with probability ``keep`` is upsampled bilinearly to
    ``(cells + 1) x`` the cell size and cropped at a random shift within one cell, so the mask edges
    fall anywhere, not only on the grid.

    Example:
        >>> masks = rise_masks(4, (32, 32), generator=torch.Generator().manual_seed(0))
        >>> masks.shape, bool(((masks >= 0) & (masks <= 1)).all())
        (torch.Size([4, 1, 32, 32]), True)
    """
    height, width = size
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    grid = (torch.rand(count, 1, cells, cells, generator=generator, device=device) < keep).float()
    up = F.interpolate(grid, size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear",
                       align_corners=False)
    dy = torch.randint(0, cell_h, (count,), generator=generator, device=device)
    dx = torch.randint(0, cell_w, (count,), generator=generator, device=device)
    rows = (dy[:, None] + torch.arange(height, device=device))[:, :, None]  # (count, H, 1)
    cols = (dx[:, None] + torch.arange(width, device=device))[:, None, :]  # (count, 1, W)
    return up[torch.arange(count, device=device)[:, None, None], 0, rows, cols][:, None]


@method("rise", "attribution", "RISE: class score averaged over random masks", group="perturbation", order=50)
def rise(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, masks: int = 1000,
         cells: int = 7, keep: float = 0.5, score: Score = "prob", fill: Fill = "dataset_mean", seed: int | None = 0,
         batch_size: int | None = None) -> torch.Tensor:
    """RISE (Petsiuk et al. 2018): ``sum_i s(x * M_i) M_i / (N keep)``, the expected score given each pixel kept.

    Good: black-box (no gradients, any model), smooth maps that do well on deletion/insertion; bad:
    thousands of forward passes per image for a stable map, and coarse (the 7 x 7 grid). All
    ``B * masks`` masked images stream through the model in device-sized batches.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.080 (lower is better), insertion AUC 0.424 (higher is better).

    Args:
        masks: random masks per image (the paper uses 4000 on ResNet-50).
        cells: the mask grid is ``cells x cells`` before upsampling.
        keep: probability that a cell is kept.
        score: ``prob`` (softmax, the paper's), ``sigmoid`` of the logit (TorchRay's) or ``logit``.
        fill: what a masked-out pixel becomes: ``dataset_mean`` (default: the paper's ``x * M`` on the
            normalized input, as the RISE code and TorchRay are used, i.e. the model's normalization mean),
            ``black`` (``x * M`` on [0, 1] pixels), ``gray``, ``mean`` (the image's) or ``blur``.
        seed: seed of the masks (``None``: not seeded); the global RNG is not touched.
        batch_size: masked images per forward pass (default: sized to the device).

    Returns:
        ``(B, 1, H, W)`` maps: the mean score of the masks that kept each pixel.
    """
    if masks < 1 or cells < 1:
        raise CnnvizError(f"masks and cells must be at least 1, got masks={masks}, cells={cells}")
    if not 0 < keep <= 1:
        raise CnnvizError(f"keep must be in (0, 1], got {keep}")
    if score not in ("prob", "sigmoid", "logit"):
        raise CnnvizError(f"score must be prob, sigmoid or logit, got {score!r}")
    height, width = images.shape[-2:]
    generator = torch.Generator(device=images.device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    pattern = rise_masks(masks, (height, width), cells=cells, keep=keep, generator=generator, device=images.device)
    return rise_with_masks(handle, images, target, pattern, keep=keep, score=score, fill=fill,
                           batch_size=batch_size)


def rise_with_masks(handle: ModelHandle, images: torch.Tensor, target: Target, pattern: torch.Tensor, *,
                    keep: float = 0.5, score: Score = "prob", fill: Fill = "dataset_mean",
                    batch_size: int | None = None) -> torch.Tensor:
    """RISE with given masks ``(N, 1, H, W)``: one stream of ``B * N`` masked images, in full batches."""
    batch, count = images.shape[0], pattern.shape[0]
    resolved = pass_target(handle, images, target)
    if resolved is None:
        with torch.no_grad():
            resolved = target_indices(handle, None, handle(images))
    fills = removed_pixels(handle, images, fill)
    weights = torch.empty(batch * count, device=images.device)
    stream = batch_size or auto_batch_size(handle)
    forward = forward_runner(handle, batch * count, stream)
    with torch.no_grad():
        for rows in chunks(batch * count, stream, desc="rise"):
            flat = torch.arange(rows.start, rows.stop, device=images.device)
            image, mask = flat // count, flat % count
            output = forward(torch.lerp(fills[image], images[image], pattern[mask]))
            output = (class_probabilities(handle, output) if score == "prob"
                      else output.sigmoid() if score == "sigmoid" else output)
            weights[rows] = target_scores(handle, take(resolved, image), output)
    maps = weights.view(batch, count) @ pattern.flatten(1)
    return (maps / (count * keep)).view(batch, 1, *images.shape[-2:])
