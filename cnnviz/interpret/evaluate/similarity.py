"""How alike two maps are, the three measures of Adebayo et al. (2018)'s sanity checks.

- ``spearman``: rank correlation of the map values (ties at their average rank).
- ``ssim``: structural similarity of the maps scaled to [0, 1] (scikit-image's
  definition: 7 x 7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03).
- ``hog``: Pearson correlation of the maps' histograms of oriented gradients
  (scikit-image's ``hog`` with its defaults).

Each takes ``(B, H, W)`` maps and gives ``(B,)`` in float64, NaN where a map
is constant (a constant map has no ranks, no structure and no gradients).
``absolute=True`` compares |map|, as Adebayo et al. report besides the signed maps.

Example:
    >>> a = torch.rand(2, 32, 32)
    >>> similarity(a, a, "ssim").tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.interpret.evaluate.statistics import constant_rows, pearson, spearman
from cnnviz.zoo.core import CnnvizError

Measure = Literal["spearman", "ssim", "hog"]
MEASURES: tuple[str, ...] = get_args(Measure)
SSIM_WINDOW = 7


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1).double()
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp(min=1e-300)).view(maps.shape)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity of two ``(B, H, W)`` maps, each scaled to [0, 1] first."""
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise CnnvizError(f"SSIM needs maps of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, "
                          f"got {tuple(a.shape[-2:])}")
    x, y = _unit_range(a)[:, None], _unit_range(b)[:, None]

    def mean(z: torch.Tensor) -> torch.Tensor:  # over each full window: the valid interior skimage averages
        return F.avg_pool2d(z, SSIM_WINDOW, stride=1)

    mx, my = mean(x), mean(y)
    unbiased = SSIM_WINDOW ** 2 / (SSIM_WINDOW ** 2 - 1)
    vx, vy = unbiased * (mean(x * x) - mx * mx), unbiased * (mean(y * y) - my * my)
    cxy = unbiased * (mean(x * y) - mx * my)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return index.flatten(1).mean(1)


def hog_features(maps: torch.Tensor) -> torch.Tensor:
    """scikit-image's HOG descriptor of each ``(B, H, W)`` map scaled to [0, 1], ``(B, D)`` (on the CPU)."""
    from skimage.feature import hog  # imported lazily: scikit-image is slow to import

    scaled = _unit_range(maps).cpu().numpy()
    try:
        return torch.from_numpy(np.stack([hog(m) for m in scaled])).to(maps.device)
    except ValueError as exc:
        raise CnnvizError(f"HOG needs larger maps than {tuple(maps.shape[-2:])}: {exc}") from None


def similarity(a: torch.Tensor, b: torch.Tensor, measure: Measure = "spearman", *,
               absolute: bool = False) -> torch.Tensor:
    """Similarity of maps ``a`` and ``b`` ``(B, H, W)`` by ``measure``, ``(B,)``; NaN where one is constant."""
    if measure not in MEASURES:
        raise CnnvizError(f"unknown similarity {measure!r}; choose from {', '.join(MEASURES)}")
    if a.shape != b.shape or a.dim() != 3:
        raise CnnvizError(f"similarity needs two (B, H, W) maps of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if absolute:
        a, b = a.abs(), b.abs()
    if measure == "spearman":
        return spearman(a.flatten(1), b.flatten(1))
    if measure == "ssim":
        value = ssim(a, b)
    else:
        value = pearson(hog_features(a), hog_features(b))
    undefined = constant_rows(a.flatten(1)) | constant_rows(b.flatten(1))
    return torch.where(undefined, torch.full_like(value, math.nan), value)
