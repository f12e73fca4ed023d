"""The CAM core: one forward (and backward) pass per batch, shared by every CAM variant.

A variant only says how one layer's activations ``A`` (and gradients ``G``) become a map: Grad-CAM
is ``sum_c mean(G_c) A_c``, LayerCAM ``sum_c relu(G_c) A_c``, and so on (the way pytorch-grad-cam's
``BaseCAM`` keeps its variants small). The core does the rest once: it resolves layers, targets and
batches, records each layer inside :mod:`zoo.hooks` context managers, turns token and
channels-last layers into ``(B, C, h, w)`` grids, applies the ReLU, upsamples, and fuses several
layers the way pytorch-grad-cam does (each layer min-max scaled, upsampled, averaged, scaled again).

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> def grad_cam(batch, view):
    ...     return (view.grad.mean(dim=(2, 3), keepdim=True) * view.activation).sum(1)
    >>> class_activation_maps(handle, images, None, None, grad_cam).shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Union

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.targets import (
    ResolvedTarget, Target, is_score_fn, pass_target, take, target_indices, target_scores,
)
from cnnviz.zoo.core import CnnvizError, graph_from, record
from cnnviz.zoo.handle import ModelHandle, layer_name

LayerArg = Union[str, nn.Module, Sequence[Union[str, nn.Module]], None]
Reshape = Union[str, Callable[[torch.Tensor], torch.Tensor], None]
Needs = Literal["activations", "gradients", "hessian"]
ScoreRule = Callable[[ModelHandle, "ResolvedTarget | None", torch.Tensor], torch.Tensor]
RESHAPES = ("auto", "channels_first", "channels_last", "tokens")


def cam_layers(handle: ModelHandle, layer: LayerArg) -> dict[str, nn.Module]:
    """``{name: module}`` of the layers to use: one, several (a list or ``"a,b"``), or the model's default."""
    if layer is None:
        if handle.default_layer is None:
            raise CnnvizError(f"{handle.name} has no default layer for CAM: pass layer= (see cnnviz layers)")
        layer = handle.default_layer
    if isinstance(layer, str):
        layer = [part.strip() for part in layer.split(",") if part.strip()]
    elif isinstance(layer, nn.Module):
        layer = [layer]
    if not layer:
        raise CnnvizError("no layer given: name at least one")
    modules = [handle.layer(item) for item in layer]
    return {layer_name(handle.model, module): module for module in modules}


def token_grid(tokens: int) -> tuple[int, int]:
    """``(prefix, side)``: how many leading tokens (class, distillation, registers) to drop so the
    rest form a square grid; the fewest that work."""
    for prefix in range(0, 9):
        side = math.isqrt(tokens - prefix) if tokens > prefix else 0
        if side > 0 and side * side == tokens - prefix:
            return prefix, side
    raise CnnvizError(f"a token layer with {tokens} tokens does not hold a square grid (with up to 8 leading "
                      "class or register tokens): pass reshape= a function returning (B, C, h, w)")


def to_grid(tensor: torch.Tensor, reshape: Reshape = "auto") -> torch.Tensor:
    """A layer's output as a ``(B, C, h, w)`` grid, the form every CAM variant works on.

    Args:
        tensor: the layer's output: ``(B, C, h, w)``, channels-last ``(B, h, w, C)`` (ConvNeXt, Swin), or
            tokens ``(B, N, C)`` of a vision transformer (leading class tokens are dropped).
        reshape: ``auto`` (square spatial dims tell the layout), ``channels_first``, ``channels_last``,
            ``tokens``, or a callable doing it (pytorch-grad-cam's ``reshape_transform``).

    Example:
        >>> to_grid(torch.zeros(2, 197, 192)).shape  # ViT tokens: class token + 14 x 14
        torch.Size([2, 192, 14, 14])
        >>> to_grid(torch.zeros(2, 7, 7, 768)).shape  # Swin / ConvNeXt channels-last
        torch.Size([2, 768, 7, 7])
    """
    if callable(reshape):
        grid = reshape(tensor)
        if not isinstance(grid, torch.Tensor) or grid.dim() != 4:
            raise CnnvizError("reshape= must return a (B, C, h, w) tensor, got "
                              f"{tuple(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__}")
        return grid
    mode = reshape or "auto"
    if mode not in RESHAPES:
        raise CnnvizError(f"unknown reshape {mode!r}: choose from {', '.join(RESHAPES)}, or pass a function")
    if tensor.dim() == 3 and mode in ("auto", "tokens"):
        prefix, side = token_grid(tensor.shape[1])
        return tensor[:, prefix:].unflatten(1, (side, side)).permute(0, 3, 1, 2)
    if tensor.dim() == 4:
        channels_last = mode == "channels_last" or (
            mode == "auto" and tensor.shape[1] == tensor.shape[2] != tensor.shape[3])
        return tensor.permute(0, 3, 1, 2) if channels_last else tensor
    raise CnnvizError(f"CAM methods need a conv layer (B, C, h, w), a channels-last (B, h, w, C) or a token "
                      f"layer (B, N, C); this one gives {tuple(tensor.shape)} (reshape={mode}): pick another with "
                      "--layer (layer=), listed by cnnviz layers MODEL")


@dataclass
class LayerView:
    """One layer seen by a CAM variant, for one batch of images.

    Attributes:
        name, module: the layer.
        output: the layer's own output (its own layout: grid, channels-last or tokens).
        activation: the output as a ``(B, C, h, w)`` grid.
        grad: d score / d activation on the same grid (None when the variant needs no gradients).
        hvp: the Hessian of the score times the activation, on the grid (Shapley-CAM only).
    """

    name: str
    module: nn.Module
    output: torch.Tensor
    activation: torch.Tensor
    grad: torch.Tensor | None = None
    hvp: torch.Tensor | None = None


@dataclass
class CamBatch:
    """What a variant may use beyond its layer: the images and how to score model outputs.

    Attributes:
        handle: the model.
        images: this batch's images ``(b, C, H, W)`` in [0, 1].
        target: class indices ``(b,)`` fixed on the clean images, or the user's callable.
        logits: the model output on the clean images (detached).
    """

    handle: ModelHandle
    images: torch.Tensor
    target: ResolvedTarget
    logits: torch.Tensor

    def scores(self, output: torch.Tensor, image_rows: torch.Tensor) -> torch.Tensor:
        """The target score of each row of ``output``, a copy of image ``image_rows[k]`` of this batch."""
        return target_scores(self.handle, take(self.target, image_rows), output)


Variant = Callable[[CamBatch, LayerView], torch.Tensor]


def min_max(maps: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Each map scaled to [0, 1] over its own pixels (pytorch-grad-cam's ``scale_cam_image`` rule)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    shifted = maps - low
    high = shifted.flatten(1).max(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    return shifted / (high + eps)


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``(B, 1, h, w)`` maps to ``size`` (half-pixel centres, as OpenCV)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def fuse(per_layer: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """Maps of several layers as one: each min-max scaled and upsampled, averaged, scaled again."""
    scaled = [upsample(min_max(F.relu(m)), size) for m in per_layer]
    return min_max(F.relu(torch.stack(scaled).mean(dim=0)))


def _capture(handle: ModelHandle, images: torch.Tensor, target: ResolvedTarget | None,
             layers: dict[str, nn.Module], needs: Needs, reshape: Reshape,
             score_rule: ScoreRule) -> tuple[torch.Tensor, list[LayerView], torch.Tensor]:
    """One forward pass recording ``layers`` (and one backward pass when gradients are needed).

    Returns the logits, one view per layer, and the score per image.
    """
    if needs == "activations":
        with torch.no_grad(), record(layers) as recs:
            logits = handle(images)
        outputs = [recs[name].output for name in layers]
        views = [LayerView(name, module, out, to_grid(out, reshape))
                 for (name, module), out in zip(layers.items(), outputs)]
        return logits, views, torch.zeros(images.shape[0], device=images.device)
    if len(layers) == 1:
        # The graph starts at the layer: below it the forward pass keeps nothing for a backward pass.
        ((name, module),) = layers.items()
        with graph_from(module, name) as rec:
            logits = handle(images)
            score = score_rule(handle, target, logits)
            outputs = [rec.output]
    else:
        leaf = images.detach().requires_grad_(True)  # the graph must reach the lowest of the layers
        with torch.enable_grad(), record(layers, detach=False) as recs:
            logits = handle(leaf)
            score = score_rule(handle, target, logits)
            outputs = [recs[name].output for name in layers]
    with torch.enable_grad():
        grads = torch.autograd.grad(score.sum(), outputs, allow_unused=True, create_graph=needs == "hessian")
        for name, grad in zip(layers, grads):
            if grad is None:
                raise CnnvizError(f"no gradient reached layer {name!r}: the target does not depend on it")
        hvps: Sequence[torch.Tensor | None] = [None] * len(outputs)
        if needs == "hessian":
            # d(G . A)/dA with A held fixed: the Hessian-vector product H A (Shapley-CAM's second-order term).
            # A gradient that does not depend on the activation (a linear head above it) has H A = 0.
            pairs = [(g, o) for g, o in zip(grads, outputs) if g.requires_grad]
            found = iter(torch.autograd.grad([g for g, _ in pairs], [o for _, o in pairs],
                                             grad_outputs=[o.detach() for _, o in pairs], allow_unused=True)
                         if pairs else [])
            hvps = [next(found) if g.requires_grad else None for g in grads]
    views = []
    for (name, module), out, grad, hvp in zip(layers.items(), outputs, grads, hvps):
        out = out.detach()
        views.append(LayerView(name, module, out, to_grid(out, reshape), to_grid(grad.detach(), reshape),
                               None if hvp is None else to_grid(hvp.detach(), reshape)))
    return logits.detach(), views, score.detach()


def class_activation_maps(handle: ModelHandle, images: torch.Tensor, target: Target, layer: LayerArg,
                          variant: Variant, *, needs: Needs = "gradients", reshape: Reshape = "auto",
                          upsample_to_input: bool = True, batch_size: int | None = None,
                          score_rule: ScoreRule = target_scores, desc: str | None = None) -> torch.Tensor:
    """Run a CAM variant over a batch: the shared machinery of every CAM method.

    Args:
        variant: ``(batch, view) -> (b, h, w)`` map of one layer before the ReLU.
        needs: ``activations`` (no backward pass), ``gradients``, or ``hessian`` (also H A).
        reshape: how token or channels-last layers become grids (see :func:`to_grid`).
        upsample_to_input: resize to the input size; one layer only (several are always fused at it).
        batch_size: images per forward/backward pass (default: sized to the device).
        score_rule: ``(handle, target, logits) -> (b,)`` the score differentiated (default: the target's).

    Returns:
        ``(B, 1, H, W)`` non-negative maps; with one layer unnormalized, with several fused into [0, 1].
    """
    layers = cam_layers(handle, layer)
    resolved = pass_target(handle, images, target)
    batch_size = batch_size or auto_batch_size(handle, backward=needs != "activations")
    per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
    for rows in chunks(images.shape[0], batch_size, desc=desc):
        chunk_target = None if resolved is None else take(resolved, rows)
        logits, views, _ = _capture(handle, images[rows], chunk_target, layers, needs, reshape, score_rule)
        fixed = chunk_target if is_score_fn(chunk_target) else target_indices(handle, chunk_target, logits)
        batch = CamBatch(handle, images[rows], fixed, logits)
        for maps, view in zip(per_layer, views):
            maps.append(variant(batch, view)[:, None])
    stacked = [torch.cat(maps) for maps in per_layer]
    if len(stacked) > 1:
        return fuse(stacked, images.shape[-2:])
    cam = F.relu(stacked[0])
    return upsample(cam, images.shape[-2:]) if upsample_to_input else cam


SPATIAL = (2, 3)  # the grid axes of (B, K, H, W) activations


def weighted_sum(weights: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """``sum_c w_c A_c``: the CAM of channel weights ``(b, C)`` on a ``(b, C, h, w)`` grid."""
    return (weights[:, :, None, None] * activation).sum(dim=1)


def principal_projection(grid: torch.Tensor, *, align: bool = True) -> torch.Tensor:
    """Each map's pixels projected on their first principal component ``(b, h, w)`` (Eigen-CAM).

    Pixels are rows, channels columns, centred per channel. An SVD's sign is arbitrary (LAPACK builds
    differ); with ``align`` the sign makes the projection correlate positively with the channel sum of
    ``grid``, so the map points at strong activations whatever the SVD returned.
    """
    b, c, h, w = grid.shape
    pixels = torch.nan_to_num(grid).flatten(2).transpose(1, 2)  # (b, hw, C)
    pixels = pixels - pixels.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(pixels, full_matrices=False)
    projection = (pixels @ vh[:, 0, :, None])[..., 0]  # (b, hw)
    if align:
        total = pixels.sum(dim=2)  # the centred channel sum
        sign = torch.sign((projection * total).sum(dim=1, keepdim=True))
        projection = projection * torch.where(sign == 0, torch.ones_like(sign), sign)
    return projection.view(b, h, w)
