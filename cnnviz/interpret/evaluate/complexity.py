"""How concentrated a map is: the Gini index (sparseness) and the entropy (complexity) of |map|.

Definitions as Quantus reports them (Chalasani et al. 2020 for the Gini
index, Bhatt et al. 2020 for the entropy), on the absolute values of the
map with its channels reduced by max |value|. A map that is zero
everywhere has neither: it gives NaN. Both are batched and take maps from
any source (see :func:`interpret.evaluate.map_sources.batch_of_maps`).

Example:
    >>> peak = torch.zeros(1, 1, 8, 8)
    >>> peak[..., 3, 4] = 1.0
    >>> float(gini(peak)), float(entropy(peak))
    (0.984375, 0.0)
"""

from __future__ import annotations

import math

import torch

from cnnviz.interpret.core.maps import attribution_map
from cnnviz.interpret.evaluate.map_sources import MapSource, batch_of_maps


def _magnitudes(maps: MapSource) -> torch.Tensor:
    return attribution_map(batch_of_maps(maps)).abs().flatten(1).double()


def gini(maps: MapSource) -> torch.Tensor:
    """Gini index of |map| per image ``(B,)``: 0 for a flat map, near 1 when one pixel holds everything."""
    values = _magnitudes(maps).sort(dim=1).values
    n = values.shape[1]
    weights = 2 * torch.arange(1, n + 1, device=values.device, dtype=values.dtype) - n - 1
    total = values.sum(1)
    score = (weights * values).sum(1) / (n * total)
    return torch.where(total > 0, score, torch.full_like(score, math.nan))


def entropy(maps: MapSource) -> torch.Tensor:
    """Shannon entropy (nats) of |map| normalized to sum 1, per image ``(B,)``: low for a focused map."""
    values = _magnitudes(maps)
    total = values.sum(1, keepdim=True)
    p = values / total.clamp(min=1e-300)
    score = torch.where(p > 0, -p * p.log(), torch.zeros_like(p)).sum(1)
    return torch.where(total[:, 0] > 0, score, torch.full_like(score, math.nan))
