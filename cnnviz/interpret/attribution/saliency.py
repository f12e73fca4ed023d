"""Gradient saliency: vanilla gradients, SmoothGrad and integrated gradients.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> interpret.saliency(handle, images).shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import numpy as np
import torch

from cnnviz.interpret.core.gradients import input_gradients
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, pass_target, resolve_target
from cnnviz.zoo.core import CnnvizError, NonNegativeFloat, PositiveInt, UnitInterval
from cnnviz.zoo.handle import ModelHandle


def channel_max(grads: torch.Tensor) -> torch.Tensor:
    """``max_c |g|``: the classic one-channel saliency map ``(B, 1, H, W)``."""
    return grads.abs().amax(dim=1, keepdim=True)


@method("gradient", "attribution", "vanilla gradient: how much each pixel moves the class score",
        group="gradients", order=20)
def saliency(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, signed: bool = False,
             batch_size: PositiveInt | None = None) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al. 2014).

    Args:
        signed: return the raw gradient ``(B, C, H, W)`` instead of max |gradient|
            over channels ``(B, 1, H, W)``.
        batch_size: images per backward pass (default: sized to the device).
    """
    indices = pass_target(handle, images, target)
    grads = input_gradients(handle, images, indices, batch_size=batch_size)
    return grads if signed else channel_max(grads)


@method("smoothgrad", "attribution", "SmoothGrad: gradients averaged over noisy copies", group="gradients", order=21)
def smoothgrad(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, samples: PositiveInt = 50,
               noise: NonNegativeFloat = 0.15, signed: bool = False, seed: int | None = 0,
               batch_size: PositiveInt | None = None) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the mean gradient over noisy copies of each image.

    All ``B * samples`` noisy images go through the model in batches.

    Args:
        samples: noisy copies per image.
        noise: noise standard deviation as a fraction of the pixel range (1.0).
        signed: keep the sign and channels of the mean gradient.
        seed: seed of the noise (``None``: not seeded).
    """
    if samples < 1:
        raise CnnvizError(f"samples must be at least 1, got {samples}")
    if noise < 0:
        raise CnnvizError(f"noise must be non-negative, got {noise}")
    indices = resolve_target(handle, images, target)
    generator = torch.Generator(device=images.device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    noisy = images.repeat_interleave(samples, dim=0)
    noisy += noise * torch.randn(noisy.shape, generator=generator, device=images.device, dtype=noisy.dtype)
    per_row = indices.repeat_interleave(samples) if isinstance(indices, torch.Tensor) else indices
    grads = input_gradients(handle, noisy, per_row, batch_size=batch_size, desc="smoothgrad")
    mean = grads.view(images.shape[0], samples, *images.shape[1:]).mean(dim=1)
    return mean if signed else channel_max(mean)


def gauss_legendre(steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes in [0, 1] and weights of Gauss-Legendre quadrature (what captum uses by default)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (torch.tensor((nodes + 1) / 2, dtype=torch.float32, device=device),
            torch.tensor(weights / 2, dtype=torch.float32, device=device))


@method("integrated_gradients", "attribution", "integrated gradients from a black baseline",
        group="gradients", order=22)
def integrated_gradients(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, steps: PositiveInt = 32,
                         baseline: UnitInterval = 0.0, batch_size: PositiveInt | None = None) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017) with Gauss-Legendre quadrature.

    ``(x - x0) * integral_0^1 grad f(x0 + a (x - x0)) da``; all ``B * steps``
    interpolated images go through the model in batches.

    Args:
        steps: quadrature points along the path.
        baseline: the constant baseline image value x0 (0 = black).

    Returns:
        Attributions ``(B, C, H, W)``; per image they sum to about f(x) - f(x0).
    """
    if steps < 1:
        raise CnnvizError(f"steps must be at least 1, got {steps}")
    indices = resolve_target(handle, images, target)
    alphas, weights = gauss_legendre(steps, images.device)
    base = torch.full_like(images, baseline)
    delta = images - base
    path = base[:, None] + alphas.view(1, -1, 1, 1, 1) * delta[:, None]  # (B, steps, C, H, W)
    per_row = indices.repeat_interleave(steps) if isinstance(indices, torch.Tensor) else indices
    grads = input_gradients(handle, path.flatten(0, 1), per_row, batch_size=batch_size, desc="integrated gradients")
    grads = grads.view(images.shape[0], steps, *images.shape[1:])
    return delta * (weights.view(1, -1, 1, 1, 1) * grads).sum(dim=1)
