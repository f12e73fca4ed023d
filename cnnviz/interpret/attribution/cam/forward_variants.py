"""CAM variants that send masked inputs or ablated activations through the model: Score-CAM, Ablation-CAM.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> maps = interpret.scorecam(handle, images, "espresso", layer="head")  # doctest: +SKIP
    >>> maps.shape  # doctest: +SKIP
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnviz.interpret.attribution.cam.core import (
    CamBatch, LayerArg, LayerView, Reshape, SPATIAL, class_activation_maps, weighted_sum,
)
from cnnviz.interpret.core.batching import MAX_BATCH, auto_batch_size, chunks
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.removal import Fill, removed_pixels
from cnnviz.interpret.core.targets import Target
from cnnviz.zoo.core import CnnvizError, forward_hooks
from cnnviz.zoo.handle import ModelHandle, forward_runner

# --- CAMs that send masked inputs or ablated activations through the model -----------------------

@method("scorecam", "attribution", "Score-CAM: channels weighted by the score of the image they mask",
        group="cams", order=43)
def scorecam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True, fill: Fill = "dataset_mean",
             batch_size: int | None = None) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020): each channel, upsampled and scaled to [0, 1], masks the image; the
    softmax over channels of the masked images' target logits weights the channels.

    A masked-out pixel becomes ``fill``: by default the dataset mean, because the official code and
    pytorch-grad-cam multiply the *normalized* input by the mask (``black`` multiplies the [0, 1] pixels).

    Good: no gradients, so no saturation or gradient noise; bad: one forward pass per channel per image
    (1280 on lite0's head). All masked copies stream through the model in full device-sized batches:
    0.96 of lite0's forward limit on a CPU, 1.2x pytorch-grad-cam's ScoreCAM (BENCHMARKS.md).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        fill: what a masked-out pixel becomes (:mod:`interpret.core.removal`).
        batch_size: masked images per forward pass (default: sized to the device).
    """
    stream = batch_size or auto_batch_size(handle)

    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a = view.activation
        b, c = a.shape[:2]
        scores = torch.empty(b * c, device=a.device)
        removed = removed_pixels(batch.handle, batch.images, fill)
        forward = forward_runner(batch.handle, b * c, stream)
        with torch.no_grad():
            for rows in chunks(b * c, stream, desc="scorecam"):
                flat = torch.arange(rows.start, rows.stop, device=a.device)
                image, channel = flat // c, flat % c
                masks = F.interpolate(a[image, channel][:, None], size=batch.images.shape[-2:], mode="bilinear",
                                      align_corners=True)
                low = masks.amin(dim=SPATIAL, keepdim=True)
                masks = (masks - low) / (masks.amax(dim=SPATIAL, keepdim=True) - low + 1e-8)
                scores[rows] = batch.scores(forward(torch.lerp(removed[image], batch.images[image], masks)), image)
        return weighted_sum(scores.view(b, c).softmax(dim=1), a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape)


def _channel_axis(output: torch.Tensor, grid: torch.Tensor) -> int:
    """Where the grid's channels sit in the layer's own output (1 for conv maps, last for the others)."""
    return 1 if output.dim() == 4 and output.shape[1] == grid.shape[1] and output.shape[2:] == grid.shape[2:] \
        else output.dim() - 1


@method("ablationcam", "attribution", "Ablation-CAM: channels weighted by the score drop when zeroed",
        group="cams", order=44)
def ablationcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
                batch_size: int | None = None) -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy 2020): weight ``(y - y_c) / y`` per channel, ``y_c`` the target logit
    with channel ``c`` of the layer set to zero.

    Good: gradient-free and faithful to what each channel contributes; bad: one pass per channel.
    Only the network above the layer runs per ablation: each batch feeds the model one clean image, and a
    hook on the layer swaps its output for the batch of ablated copies (skip connections from below the
    layer broadcast over it). 45.7x pytorch-grad-cam's AblationCAM on lite0's
    blocks.15 (BENCHMARKS.md).

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.120 (lower is better), insertion AUC 0.397 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: ablated copies per pass above the layer (default: sized to the layer's grid).
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a, out = view.activation, view.output
        b, c = a.shape[:2]
        axis = _channel_axis(out, a)
        stream = batch_size or (MAX_BATCH if handle.device.type == "cuda"
                                else auto_batch_size(handle, size=max(a.shape[-2:])))
        clean = batch.scores(batch.logits, torch.arange(b, device=a.device))
        ablated = torch.empty(b, c, device=a.device)
        for i in range(b):
            for rows in chunks(c, stream, desc="ablationcam" if i == 0 else None):
                channels = torch.arange(rows.start, rows.stop, device=a.device)
                copies = out[i:i + 1].repeat(channels.numel(), *[1] * (out.dim() - 1))
                keep = torch.ones(channels.numel(), out.shape[axis], device=a.device, dtype=out.dtype)
                keep[torch.arange(channels.numel()), channels] = 0
                shape = [channels.numel()] + [1] * (out.dim() - 1)
                shape[axis] = out.shape[axis]
                copies = copies * keep.view(shape)
                with torch.no_grad(), forward_hooks([(view.module, lambda m, i_, o, x=copies: x)]):
                    output = batch.handle(batch.images[i:i + 1])
                if output.shape[0] != channels.numel():
                    raise CnnvizError(f"Ablation-CAM feeds layer {view.name!r}'s ablated copies to the network "
                                      "above it, but the model's output does not follow that batch: pick a layer "
                                      "on the network's main path")
                ablated[i, rows] = batch.scores(output, torch.full_like(channels, i))
        return weighted_sum((clean[:, None] - ablated) / clean[:, None], a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape)
