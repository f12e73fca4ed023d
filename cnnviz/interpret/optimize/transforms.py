"""Random transformations applied to the image at each optimization step.

Optimizing through jitter, scaling and rotation keeps only features the
model sees robustly, not pixel-exact noise. All transforms are batched (each
image draws its own parameters) and differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


def pad(pixels: int, value: float = 0.5) -> Transform:
    """Pad every side by ``pixels`` with a constant (so jitter does not reveal edges)."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        return F.pad(images, (pixels,) * 4, value=value)
    return apply


def roll(max_shift: int) -> Transform:
    """Shift the whole batch by one random offset, wrapping around (DeepDream's jitter)."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        dy, dx = torch.randint(-max_shift, max_shift + 1, (2,)).tolist()
        return images.roll((dy, dx), dims=(2, 3))
    return apply


def random_affine(max_shift: int = 8, scales: Sequence[float] = (1.0,), max_degrees: float = 0.0) -> Transform:
    """Per-image random translation (pixels), scale (from ``scales``) and rotation, in one resampling."""
    scale_choices = torch.tensor(list(scales), dtype=torch.float32)

    def apply(images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        device = images.device
        scale = scale_choices[torch.randint(len(scale_choices), (batch,))].to(device)
        angle = (torch.rand(batch, device=device) * 2 - 1) * math.radians(max_degrees)
        shift = (torch.randint(-max_shift, max_shift + 1, (batch, 2), device=device).float()
                 * 2 / torch.tensor([width, height], device=device))
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    return apply


def resize_to(size: int) -> Transform:
    """Resize to ``size`` x ``size`` (models with a dense head need their input size back after padding)."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] == (size, size):
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return apply


def noise(std: float) -> Transform:
    """Add Gaussian pixel noise of standard deviation ``std`` (MaCo's noise: only features that survive it count)."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        return images + std * torch.randn_like(images)
    return apply


def blur(max_sigma: float) -> Transform:
    """Blur each image with a Gaussian of its own random standard deviation in (0, ``max_sigma``] pixels (reflected
    edges): only features that survive a little blur count, so the optimizer reaches for shapes, not pixel-fine
    texture that one model alone reads."""
    radius = max(1, math.ceil(2 * max_sigma))

    def apply(images: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        sigma = (torch.rand(batch, device=images.device) * max_sigma).clamp_min(1e-3)
        taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
        kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # (B * C, taps)
        flat = F.pad(images.reshape(1, batch * channels, height, width), (radius,) * 4, mode="reflect")
        flat = F.conv2d(flat, kernel[:, None, None, :], groups=batch * channels)
        flat = F.conv2d(flat, kernel[:, None, :, None], groups=batch * channels)
        return flat.reshape(images.shape)

    return apply


def views(count: int) -> Transform:
    """Repeat the batch ``count`` times (view-major: rows ``v * B + b``), so that the random transforms after it
    draw ``count`` different views of every image in one pass; pair it with :func:`objectives.over_views`."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        return images.repeat(count, 1, 1, 1) if count > 1 else images
    return apply


def compose(*transforms: Transform) -> Transform:
    """Apply ``transforms`` in order."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        for transform in transforms:
            images = transform(images)
        return images
    return apply


def strong(size: int, count: int = 1) -> Transform:
    """Stronger robustness for pictures that other models also recognize: ``count`` views per image, each padded,
    shifted, rotated and zoomed into crops of 100 % down to ~60 % of the side (or out to 110 %), with a little pixel
    noise, back to ``size``, then blurred by up to 1.5 px at 224 px (the crops and noise of MaCo, Fel et al. 2023, as
    one per-image resampling; the blur measured in ``bench/optimization.py``)."""
    unit = max(1, size // 28)
    zooms = [0.9 + 0.05 * i for i in range(15)]  # 0.9 .. 1.6
    return compose(views(count), pad(2 * unit), random_affine(max_shift=2 * unit, scales=zooms, max_degrees=15),
                   noise(0.02), random_affine(max_shift=unit // 2 or 1), resize_to(size), blur(1.5 * size / 224))


def standard(size: int) -> Transform:
    """The feature-visualization default: pad, jitter, scale, rotate, jitter, back to ``size``."""
    unit = max(1, size // 28)
    return compose(pad(2 * unit), random_affine(max_shift=unit, scales=(0.95, 1.0, 1.05, 1.1), max_degrees=10),
                   random_affine(max_shift=unit // 2 or 1), resize_to(size))
