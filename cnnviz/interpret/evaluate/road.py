"""ROAD, RemOve And Debias (Rong et al. 2022): remove pixels by saliency, fill them in so the
filling tells the model nothing, and watch the class probability.

Deletion to black lets the model see the shape of the deleted region; ROAD
fills removed pixels with the *noisy linear imputation* of the paper (each
removed pixel is the weighted mean of its 8 neighbours, 1/6 across and 1/12
diagonally, solved for all removed pixels at once, plus a little noise),
which carries no trace of the mask. Most relevant first (MoRF) should
make the probability fall fast, least relevant first (LeRF) should keep
it; the combined score ``(LeRF - MoRF) / 2`` is higher for better maps.

Each removal is one sparse linear system, solved exactly on the CPU (scipy's
sparse LU, all channels at once); the forward passes are batched over images,
fractions and both orders on the model's device. The tests check the result
against pytorch-grad-cam's implementation.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> result = road(handle, images, interpret.gradcam(handle, images), fractions=(0.2, 0.5))
    >>> result.most_relevant_first.shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve
from torch import nn

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.maps import attribution_map
from cnnviz.interpret.core.targets import Target, class_probabilities, resolve_target, take, target_scores
from cnnviz.interpret.evaluate.map_sources import MapSource, as_maps
from cnnviz.zoo.core import CnnvizError, preserve
from cnnviz.zoo.handle import as_handle

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# (dy, dx, weight) of the 8 neighbours in the imputation: 1/6 across, 1/12 diagonally.
NEIGHBOURS = [(dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _impute_one(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Solve for the removed pixels of one ``(C, H, W)`` float64 image (``removed`` is ``(H, W)`` bool)."""
    channels, height, width = image.shape
    unknown = np.flatnonzero(removed)
    number = np.full(height * width, -1)
    number[unknown] = np.arange(unknown.size)
    ys, xs = np.divmod(unknown, width)
    flat_image = image.reshape(channels, -1)
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, channels))
    rows, cols, data = [], [], []
    for dy, dx, weight in NEIGHBOURS:
        y, x = ys + dy, xs + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        neighbour = np.where(inside, y * width + x, 0)
        diagonal += weight * inside
        also_removed = inside & (number[neighbour] >= 0)
        known = inside & ~also_removed
        rows.append(np.flatnonzero(also_removed))
        cols.append(number[neighbour[also_removed]])
        data.append(np.full(rows[-1].size, -weight))
        rhs[known] += weight * flat_image[:, neighbour[known]].T
    rows.append(np.arange(unknown.size))
    cols.append(np.arange(unknown.size))
    data.append(diagonal)
    system = csc_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(unknown.size, unknown.size))
    solution = spsolve(system, rhs).reshape(unknown.size, channels)
    filled = flat_image.copy()
    filled[:, unknown] = solution.T
    return filled.reshape(channels, height, width)


def linear_imputation(images: torch.Tensor, removed: torch.Tensor, *, noise: float = 0.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` ``(N, C, H, W)`` with the ``removed`` ``(N, 1, H, W)`` pixels filled by linear imputation.

    Each removed pixel becomes the weighted mean of its in-image neighbours
    (removed or not): one sparse linear system per image, solved exactly
    (scipy's sparse LU on the CPU) for all channels at once.

    Args:
        noise: standard deviation of Gaussian noise added to the filled pixels (ROAD uses 0.01).
        generator: where the noise comes from (a private one, seeded 0, when None); a CPU generator.
    """
    n, channels, height, width = images.shape
    if removed.shape != (n, 1, height, width):
        raise CnnvizError(f"the removal mask must be {(n, 1, height, width)}, got {tuple(removed.shape)}")
    masks = removed[:, 0].cpu().numpy().astype(bool)
    if masks.reshape(n, -1).all(axis=1).any():
        raise CnnvizError("a removal mask covers the whole image: there is nothing to impute from")
    values = images.detach().double().cpu().numpy()
    filled = torch.from_numpy(np.stack([_impute_one(values[i], masks[i]) for i in range(n)]))
    if noise > 0:
        generator = generator or torch.Generator().manual_seed(0)
        jitter = torch.randn(filled.shape, generator=generator, dtype=torch.float64)
        filled = filled + noise * jitter * torch.from_numpy(masks)[:, None]
    return filled.to(images.device, images.dtype)


def removal_counts(pixels: int, fractions: Sequence[float]) -> list[int]:
    """Pixels removed at each fraction: ``N - ceil((N - 1)(1 - f))``, which is what a percentile threshold
    (numpy's linear percentile, pixels at or above it removed) removes when all map values differ."""
    return [pixels - math.ceil((pixels - 1) * (1.0 - f)) for f in fractions]


@dataclass(frozen=True)
class RoadResult:
    """ROAD curves and scores.

    Attributes:
        fractions: the removal fractions ``(F,)``.
        clean: target probability on the unchanged images ``(B,)``.
        most_relevant_first, least_relevant_first: probability after removing that fraction ``(B, F)``.
        morf, lerf: mean change of probability over the fractions ``(B,)`` (MoRF: lower is better).
        combined: ``(lerf - morf) / 2`` ``(B,)`` (higher is better).
    """

    fractions: torch.Tensor
    clean: torch.Tensor
    most_relevant_first: torch.Tensor
    least_relevant_first: torch.Tensor
    morf: torch.Tensor
    lerf: torch.Tensor
    combined: torch.Tensor


def road(model: nn.Module, images: torch.Tensor, maps: MapSource, target: Target = None, *,
         fractions: Sequence[float] = FRACTIONS, noise: float = 0.01, seed: int = 0,
         batch_size: int | None = None) -> RoadResult:
    """ROAD with noisy linear imputation, most and least relevant first, at each removal fraction.

    Args:
        maps: attributions from any source (see :func:`interpret.evaluate.map_sources.as_maps`); reduced by max |value|.
        fractions: fractions of pixels removed, each in (0, 1).
        noise: standard deviation of the imputation noise in [0, 1] pixel units (0 for none).
        seed: seed of the private generator for that noise (the global RNG is not touched).
        batch_size: imputed images per forward pass (default: automatic).

    Returns:
        A :class:`RoadResult`.
    """
    handle = as_handle(model)
    fractions = [float(f) for f in fractions]
    if not fractions or not all(0.0 < f < 1.0 for f in fractions):
        raise CnnvizError(f"ROAD fractions must each be between 0 and 1 (exclusive), got {fractions}")
    if noise < 0:
        raise CnnvizError(f"the imputation noise must be at least 0, got {noise}")
    with preserve(handle), torch.no_grad():
        images = images.to(handle.device)
        flat = attribution_map(as_maps(maps, images)).flatten(1)
        indices = resolve_target(handle, images, target)
        batch, _, height, width = images.shape
        pixels = height * width
        # Rank 0 is the most salient pixel; ties go by position, so each row removes exactly its count.
        order = flat.argsort(dim=1, descending=True, stable=True)
        ranks = torch.empty_like(order).scatter_(1, order, torch.arange(pixels, device=images.device).expand_as(order))
        counts = torch.tensor(removal_counts(pixels, fractions), device=images.device)
        generator = torch.Generator().manual_seed(seed)  # the imputation runs on the CPU
        clean = target_scores(handle, indices, class_probabilities(handle, handle(images)))
        steps = len(fractions)
        total = batch * steps * 2  # rows: (image, fraction, most|least relevant first)
        probs = torch.empty(total, device=images.device)
        batch_size = batch_size or auto_batch_size(handle)
        for rows in chunks(total, batch_size, desc="ROAD"):
            row = torch.arange(rows.start, rows.stop, device=images.device)
            img, step, least = row // (2 * steps), (row // 2) % steps, (row % 2).bool()
            count = counts[step].view(-1, 1)
            top = ranks[img] < count
            bottom = ranks[img] >= pixels - count
            removed = torch.where(least.view(-1, 1), bottom, top).view(-1, 1, height, width)
            filled = linear_imputation(images[img], removed, noise=noise, generator=generator)
            probs[rows] = target_scores(handle, take(indices, img), class_probabilities(handle, handle(filled)))
    curves = probs.view(batch, steps, 2)
    morf_curve, lerf_curve = curves[..., 0], curves[..., 1]
    morf = (morf_curve - clean[:, None]).mean(1)
    lerf = (lerf_curve - clean[:, None]).mean(1)
    return RoadResult(torch.tensor(fractions), clean, morf_curve, lerf_curve, morf, lerf, (lerf - morf) / 2)
