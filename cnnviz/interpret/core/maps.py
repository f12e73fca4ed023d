"""Map utilities shared by methods, metrics and drawing: one 2-D map per image from attributions."""

from __future__ import annotations

import torch

from cnnviz.zoo.core import CnnvizError


def attribution_map(values: torch.Tensor) -> torch.Tensor:
    """One 2-D map per image from ``(B, C, H, W)`` attributions: max |value| over channels when C > 1."""
    if values.dim() != 4:
        raise CnnvizError(f"attributions must be (B, C, H, W), got {tuple(values.shape)}")
    return values.abs().amax(dim=1) if values.shape[1] > 1 else values[:, 0]
