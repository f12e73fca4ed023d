"""Infidelity and max-sensitivity (captum's definitions): does the map predict the model's response to
small input changes, and does it stay put when the input barely moves?

- Infidelity (Yeh et al. 2019): for random perturbations ``I``, the mean squared
  difference between ``I . map`` and ``f(x) - f(x - I)``, where ``f`` is the
  target probability. With ``normalize`` the map is first scaled by the best
  factor, so only its shape counts (lower is better).
- Max-sensitivity (Yeh et al. 2019): the largest relative change
  ``||map(x + e) - map(x)|| / ||map(x)||`` over uniform noise ``e`` in
  ``[-radius, radius]`` (lower is more stable).

Noise comes from a private generator seeded with ``seed``: the global RNG is
not touched, and a call with the same seed and batch size repeats exactly.
Perturbed images are not clipped to [0, 1], as in captum.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> infidelity(handle, images, interpret.saliency(handle, images), samples=4).shape
    torch.Size([1])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.targets import Target, class_probabilities, resolve_target, take, target_scores
from cnnviz.interpret.evaluate.map_sources import MapSource, as_maps
from cnnviz.zoo.core import CnnvizError, preserve
from cnnviz.zoo.handle import as_handle

Explainer = Callable[..., torch.Tensor]


def _check(samples: int, scale: float, what: str) -> None:
    if samples < 1:
        raise CnnvizError(f"samples must be at least 1, got {samples}")
    if not scale > 0:
        raise CnnvizError(f"{what} must be above 0, got {scale}")


def infidelity(model: nn.Module, images: torch.Tensor, maps: MapSource, target: Target = None, *,
               samples: int = 16, noise: float = 0.05, normalize: bool = True, seed: int = 0,
               batch_size: int | None = None) -> torch.Tensor:
    """Infidelity of ``maps`` under Gaussian perturbations, per image ``(B,)`` (lower is better).

    Args:
        maps: attributions ``(B, C|1, H, W)`` from any source; one channel counts for every colour channel.
        samples: perturbations per image.
        noise: standard deviation of the perturbation, in [0, 1] pixel units.
        normalize: scale the map by the factor that fits best first (captum's ``normalize``).
        seed: seed of the private generator for the perturbations.
        batch_size: perturbed images per forward pass (default: automatic).
    """
    _check(samples, noise, "the perturbation noise")
    handle = as_handle(model)
    with preserve(handle), torch.no_grad():
        images = images.to(handle.device)
        maps = as_maps(maps, images)
        if maps.shape[1] == 1:
            maps = maps.expand_as(images)
        if maps.shape != images.shape:
            raise CnnvizError(f"maps {tuple(maps.shape)} must have 1 or {images.shape[1]} channels")
        indices = resolve_target(handle, images, target)
        clean = target_scores(handle, indices, class_probabilities(handle, handle(images)))
        generator = torch.Generator(device=images.device).manual_seed(seed)
        total = images.shape[0] * samples  # rows: (image, sample), image-major as captum repeats them
        predicted = torch.empty(total, device=images.device, dtype=torch.float64)
        observed = torch.empty_like(predicted)
        for rows in chunks(total, batch_size or auto_batch_size(handle), desc="infidelity"):
            img = torch.arange(rows.start, rows.stop, device=images.device) // samples
            perturbation = noise * torch.randn(images[img].shape, generator=generator, device=images.device)
            scores = target_scores(handle, take(indices, img),
                                   class_probabilities(handle, handle(images[img] - perturbation)))
            predicted[rows] = (perturbation * maps[img]).flatten(1).sum(1).double()
            observed[rows] = (clean[img] - scores).double()
    predicted, observed = predicted.view(-1, samples), observed.view(-1, samples)
    if normalize:
        beta = (predicted * observed).sum(1) / (predicted * predicted).sum(1)
        beta = torch.where(beta.isfinite(), beta, torch.zeros_like(beta))  # a zero map: nothing to scale
        predicted = beta[:, None] * predicted
    return (predicted - observed).pow(2).mean(1)


def max_sensitivity(model: nn.Module, images: torch.Tensor, explain: Explainer, target: Target = None, *,
                    samples: int = 8, radius: float = 0.02, seed: int = 0,
                    batch_size: int | None = None) -> torch.Tensor:
    """Max-sensitivity of ``explain`` per image ``(B,)``: the largest relative change of the map.

    Args:
        explain: ``explain(handle, images, target) -> maps``, e.g. ``interpret.attribution.saliency``.
        samples: noisy copies per image.
        radius: the noise is uniform in ``[-radius, radius]``, in [0, 1] pixel units.
        seed: seed of the private generator for the noise.
        batch_size: noisy images per call of ``explain`` (default: automatic).
    """
    _check(samples, radius, "the radius")
    handle = as_handle(model)
    images = images.to(handle.device)
    with torch.no_grad():
        indices = resolve_target(handle, images, target)
    original = explain(handle, images, indices).detach()
    norms = original.flatten(1).norm(dim=1).double()
    norms = torch.where(norms == 0, torch.ones_like(norms), norms)  # captum's convention for a zero map
    generator = torch.Generator(device=images.device).manual_seed(seed)
    total = images.shape[0] * samples
    changes = torch.empty(total, device=images.device, dtype=torch.float64)
    for rows in chunks(total, batch_size or auto_batch_size(handle, backward=True), desc="max-sensitivity"):
        img = torch.arange(rows.start, rows.stop, device=images.device) // samples
        jitter = (2 * torch.rand(images[img].shape, generator=generator, device=images.device) - 1) * radius
        noisy = explain(handle, images[img] + jitter, take(indices, img)).detach()
        changes[rows] = (noisy - original[img]).flatten(1).norm(dim=1).double() / norms[img]
    return changes.view(-1, samples).amax(1)
