"""Extremal perturbations: the smooth mask of a given area that keeps the class score highest.

A preset over the optimization engine (:mod:`interpret.optimize.engine`): the parameterization is a
low-resolution mask blending each image with its blurred copy, the objective is the target logit of
the blended image minus a growing penalty that pulls the sorted mask values onto a step function with
exactly ``area`` ones (Fong, Patrick & Vedaldi 2019).

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.extremal(handle, images, "espresso", steps=4).shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, is_score_fn, resolve_target
from cnnviz.interpret.optimize import engine, objectives
from cnnviz.interpret.optimize.objectives import Context, Objective
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

Variant = Literal["preserve", "delete"]


class BlendMask(nn.Module):
    """A mask on a coarse grid, upsampled smoothly; ``forward()`` blends images with their fills through it.

    Args:
        images: ``(N, C, H, W)`` in [0, 1].
        fills: what a masked-out pixel becomes (a blurred copy), same shape.
        step: pixels per mask cell.
        variant: ``preserve`` keeps the masked region; ``delete`` removes it.
    """

    def __init__(self, images: torch.Tensor, fills: torch.Tensor, step: int, variant: Variant) -> None:
        super().__init__()
        height, width = images.shape[-2:]
        self.images, self.fills, self.variant = images, fills, variant
        grid = (images.shape[0], 1, math.ceil(height / step) + 1, math.ceil(width / step) + 1)
        self.cells = nn.Parameter(torch.full(grid, 0.5, device=images.device))

    def mask(self) -> torch.Tensor:
        """The full-resolution mask ``(N, 1, H, W)`` in [0, 1]."""
        return F.interpolate(self.cells, size=self.images.shape[-2:], mode="bicubic", align_corners=True).clamp(0, 1)

    def forward(self) -> torch.Tensor:
        kept = self.mask() if self.variant == "preserve" else 1 - self.mask()
        return torch.lerp(self.fills, self.images, kept)

    @torch.no_grad()
    def project(self) -> None:
        self.cells.clamp_(0, 1)


def area_penalty(mask: BlendMask, areas: torch.Tensor, weight: list[float]) -> Objective:
    """``weight * mean((sort(m) - r)^2)`` per row: zero only when exactly ``areas[i]`` of mask i is 1, the rest 0."""
    def fn(context: Context) -> torch.Tensor:
        values = mask.mask().flatten(1).sort(dim=1).values
        count = values.shape[1]
        ones = (areas * count).round()[:, None]
        reference = (torch.arange(count, device=values.device)[None] >= count - ones).float()
        return weight[0] * ((values - reference) ** 2).mean(dim=1)
    return Objective(fn, "area", uses_logits=False)


@method("extremal", "attribution", "extremal perturbation: the mask of fixed area that keeps the score",
        group="perturbation", order=51)
def extremal(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, area: float = 0.1,
             steps: int = 300, lr: float = 3.0, step: int = 8, blur: float = 10.0,
             variant: Variant = "preserve", levels: int = 1, penalty: float = 300.0,
             optimizer: Literal["sgd", "adam"] = "sgd", seed: int | None = 0) -> torch.Tensor:
    """Extremal perturbation (Fong, Patrick & Vedaldi 2019): the smooth mask covering ``area`` of the image
    whose preserved pixels (the rest blurred) keep the target logit highest.

    Good: a mask with a meaning (the smallest region that suffices) and a fixed area, so no threshold to
    pick; bad: an optimization, hundreds of forward and backward passes per image, and one area per run.
    Every image is optimized in one batch on the engine.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.035 (lower is better), insertion AUC 0.387 (higher is better).

    Args:
        area: fraction of the image the mask keeps (0 to 1).
        steps: optimizer steps (TorchRay uses 800).
        lr: step size on the mask cells (3.0 suits SGD at 224 px: gradients per cell shrink with the
            pixel count).
        step: pixels per mask cell (the mask's smoothness).
        blur: Gaussian sigma of the blurred copy that replaces masked-out pixels.
        variant: ``preserve`` (the region that keeps the score) or ``delete`` (the region whose removal
            drops it most; with ``blur=0`` removal is to black, as the deletion metric removes pixels).
        levels: optimize masks of ``levels`` nested areas ``area * k / levels`` together and return their
            mean, a graded map whose smallest region ranks highest (TorchRay's figures sum such masks).
        penalty: starting weight of the area constraint; it grows 16-fold over the steps (TorchRay's
            0.35 % a step over its 800 steps).
        optimizer: ``sgd`` (momentum 0.9, as TorchRay: the reward's gradient magnitude decides which pixels
            win the area) or ``adam`` (per-cell normalized steps; the area penalty then dominates).
        seed: seeds the engine's random state (the jitter itself alternates flips).

    Returns:
        ``(B, 1, H, W)`` masks in [0, 1] (the mean over levels).
    """
    if not 0 < area < 1:
        raise CnnvizError(f"area must be between 0 and 1, got {area}")
    if step < 1 or steps < 1:
        raise CnnvizError(f"steps and step must be at least 1, got steps={steps}, step={step}")
    if variant not in ("preserve", "delete"):
        raise CnnvizError(f"variant must be preserve or delete, got {variant!r}")
    if levels < 1:
        raise CnnvizError(f"levels must be at least 1, got {levels}")
    indices = resolve_target(handle, images, target)
    if isinstance(indices, torch.Tensor):
        indices = indices.repeat_interleave(levels)
    images = images.repeat_interleave(levels, dim=0)
    areas = area * torch.arange(1, levels + 1, device=images.device).repeat(images.shape[0] // levels) / levels
    side = min(max(3, int(4 * blur) | 1), 2 * min(images.shape[-2:]) - 1)  # reflect padding < image side
    fills = gaussian_blur(images, [side, side], [blur, blur]) if blur > 0 else torch.zeros_like(images)
    mask = BlendMask(images, fills, step, variant)
    weight = [penalty]
    if is_score_fn(indices):
        reward = Objective(lambda c: indices(c.logits), "target")  # type: ignore[operator]
    else:
        reward = objectives.class_logit(indices)
    objective = (reward if variant == "preserve" else -reward) - area_penalty(mask, areas, weight)
    count = [0]

    def jitter(batch: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        return batch.flip(-1) if count[0] % 2 == 0 else batch

    growth = 16 ** (1 / steps)

    def grow(_: nn.Module, __: int) -> None:
        weight[0] *= growth

    engine.optimize(handle, mask, objective, steps=steps, lr=lr, optimizer=optimizer, transforms=jitter,
                    every_step=grow, seed=seed, progress=False, desc="extremal")
    with torch.no_grad():
        masks = mask.mask().detach()
    return masks.view(-1, levels, *masks.shape[1:]).mean(dim=1)
