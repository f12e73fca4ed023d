"""Faithfulness scores: do the maps point at what the model actually uses?

- Deletion / insertion (Petsiuk et al. 2018, RISE): remove the most salient
  pixels first (to black) and watch the class probability fall — lower
  area under the curve is better; or insert them first onto a blurred canvas
  and watch it rise — higher is better. A random map is the baseline to beat.
- Model-parameter randomization (Adebayo et al. 2018): re-initialize the
  layers from the top down; a faithful map changes (low Spearman rank
  correlation with the original), an edge detector does not.

Example:
    >>> import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> curves = deletion_insertion(handle, images, interpret.gradcam(handle, images))
    >>> float(curves.deletion_auc[0]) < float(curves.insertion_auc[0])
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from interpret.batching import auto_batch_size, chunks
from interpret.gradients import resolve_target
from interpret.guard import preserve
from interpret.render import attribution_map
from interpret.targets import Target, target_scores
from zoo.errors import CnnvizError
from zoo.handle import as_handle


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves ``(B, steps + 1)`` with their areas ``(B,)``."""

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_auc: torch.Tensor
    insertion_auc: torch.Tensor


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel by saliency, 0 = most salient, ``(B, H*W)``; ties broken by position."""
    flat = attribution_map(maps).flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def blurred_canvas(images: torch.Tensor) -> torch.Tensor:
    """The insertion start: the image blurred beyond recognition (kernel a quarter of the side)."""
    side = max(3, (min(images.shape[-2:]) // 4) | 1)
    return gaussian_blur(images, [side, side], [side / 4.0, side / 4.0])


def _auc(curve: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def deletion_insertion(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, target: Target = None, *,
                       steps: int = 32, batch_size: int | None = None) -> Curves:
    """Deletion (to black) and insertion (onto a blurred canvas) curves of the target probability.

    Args:
        maps: attributions ``(B, C|1, H, W)`` at the images' size (reduced by max |value|).
        steps: points on each curve after the start (pixels move in ``H*W/steps`` groups).
    """
    handle = as_handle(model)
    if maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise CnnvizError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}: "
                          "upsample them to the image size")
    if steps < 2:
        raise CnnvizError(f"steps must be at least 2, got {steps}")
    with preserve(handle), torch.no_grad():
        images = images.to(handle.device)
        indices = resolve_target(handle, images, target)
        batch, _, height, width = images.shape
        ranks = pixel_ranks(maps.to(handle.device)).view(batch, 1, height, width)
        counts = torch.linspace(0, height * width, steps + 1, device=images.device).round()
        black, canvas = torch.zeros_like(images), blurred_canvas(images)
        batch_size = batch_size or auto_batch_size(handle)
        # Rows: (image, step, deletion|insertion), flattened so batches are full.
        total = batch * (steps + 1) * 2
        probs = torch.empty(total, device=images.device)
        for rows in chunks(total, batch_size, desc="deletion/insertion"):
            flat = torch.arange(rows.start, rows.stop, device=images.device)
            img, step, insert = flat // (2 * (steps + 1)), (flat // 2) % (steps + 1), (flat % 2).bool()
            revealed = (ranks[img] < counts[step].view(-1, 1, 1, 1)).float()  # top pixels of this step
            deleted = torch.lerp(images[img], black[img], revealed)
            inserted = torch.lerp(canvas[img], images[img], revealed)
            inputs = torch.where(insert.view(-1, 1, 1, 1), inserted, deleted)
            row_target = indices[img] if isinstance(indices, torch.Tensor) else indices
            probs[rows] = target_scores(handle, row_target, handle(inputs).softmax(-1))
    curves = probs.view(batch, steps + 1, 2)
    deletion, insertion = curves[..., 0], curves[..., 1]
    return Curves(counts / (height * width), deletion, insertion, _auc(deletion), _auc(insertion))


def random_maps(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The baseline: uniform random maps ``(B, 1, H, W)``."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return torch.rand(images.shape[0], 1, *images.shape[-2:], generator=generator, device=images.device)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per row of two ``(B, N)`` tensors."""
    def ranks(x: torch.Tensor) -> torch.Tensor:
        return x.argsort(dim=1).argsort(dim=1).float()

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp(min=1e-12)


def randomization_units(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's blocks from input to output: top-level children, with
    Sequential/ModuleList children opened one level (ResNet's ``layer4.1``,
    EfficientNet's ``blocks.15``). Blocks without parameters are skipped."""
    units = []
    for name, child in net.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            units.extend((f"{name}.{sub}", module) for sub, module in child.named_children())
        else:
            units.append((name, child))
    return [(name, m) for name, m in units if any(True for _ in m.parameters())]


def reinitialize(module: nn.Module, generator_seed: int) -> None:
    """Fresh random weights for every submodule that knows how to reset itself."""
    torch.manual_seed(generator_seed)
    for sub in module.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


@dataclass(frozen=True)
class RandomizationResult:
    """Spearman correlation ``(B,)`` of |map| after randomizing each cascade of layers."""

    layers: list[str]
    correlations: list[torch.Tensor]


def randomization_check(model: nn.Module, images: torch.Tensor, explain: Callable[..., torch.Tensor],
                        target: Target = None, *, seed: int = 0, max_steps: int | None = None) -> RandomizationResult:
    """Cascading model-parameter randomization (Adebayo et al. 2018), on a copy of the model.

    Args:
        explain: ``explain(handle, images, target) -> maps``, e.g. ``interpret.gradcam``.
        target: kept fixed to the original model's prediction when ``None``.
        max_steps: stop after randomizing this many blocks (default: all, top down).

    Returns:
        After each step k, the correlation between the original map and the map
        of the model whose top k blocks are random. The user's model is not touched.
    """
    handle = as_handle(model)
    with torch.no_grad():
        indices = resolve_target(handle, images.to(handle.device), target)
    original = attribution_map(explain(handle, images, indices)).flatten(1)
    clone = copy.deepcopy(handle)
    units = list(reversed(randomization_units(clone.model)))[:max_steps]
    names, correlations = [], []
    for step, (name, unit) in enumerate(units):
        reinitialize(unit, seed + step)
        randomized = attribution_map(explain(clone, images, indices)).flatten(1)
        names.append(name)
        correlations.append(spearman(original.abs(), randomized.abs()))
    return RandomizationResult(names, correlations)
