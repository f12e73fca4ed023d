"""Neural style transfer (Gatys, Ecker & Bethge 2016) as a preset of the optimization engine.

The picture is optimized so that its features at one deep layer match the
content image's (content loss) while the Gram matrices of its features at
several layers match the style image's (style loss), with a little total
variation for smoothness. Every term is an :class:`~interpret.optimize.objectives.Objective`
(a loss, subtracted), so the engine that draws activation maximizations and
DeepDreams draws this too.

Backbones other than VGG give weak style: their residual features are peaky,
of small entropy, and a Gram matrix of them is dominated by a few units.
Wang, Li & Vasconcelos (2021, "Rethinking and Improving the Robustness of
Image Style Transfer", SWAG) pass each layer's activations through a softmax
over all of the layer's values (channels and positions together) before the
Gram and content losses. Here that softmax is applied to the activations
divided by ``temperature`` times the layer's standard deviation on the target
image (a constant per layer, so one temperature suits layers of any scale) and
multiplied by the number of values (mean one, so losses do not depend on the
resolution). It is on by default for every backbone but VGG.

Losses are relative, so the weights need no rescaling between layers or models:
content ``||phi(x) - phi(c)||^2 / ||phi(c)||^2`` and, per style layer,
``||G(x) - G(s)||^2 / ||G(s)||^2`` with ``G = F F^T / (H W)``.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.optimize.style import style_transfer
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> content = zoo.load_image("chelsea")[None]
    >>> result = style_transfer(handle, content, style=zoo.load_image("gravel"), size=64, steps=2,
    ...                         progress=False)
    >>> result.images.shape, sorted(result.history)
    (torch.Size([1, 3, 43, 64]), ['content', 'style', 'total', 'tv'])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.interpret.core.registry import method
from cnnviz.interpret.optimize import engine, objectives, param
from cnnviz.interpret.optimize.objectives import Context, Objective
from cnnviz.zoo.core import CnnvizError, ImageSide, NonNegativeFloat, PositiveFloat, PositiveInt, record, run_until
from cnnviz.zoo.handle import ModelHandle, match_channels

Init = Literal["content", "noise"]
Optimizer = Literal["lbfgs", "adam"]

# Per backbone: (style layers, content layer). VGG: ReLU outputs of conv1_1..conv5_1 and conv4_2
# (torchvision ``features`` indices), as in Gatys et al. EfficientNet-Lite: the expansion ReLU6 of
# the blocks that open each resolution (and the stem), content one block deeper into the 1/16 stage;
# chosen by looking at the pictures (see bench/style.py and BENCHMARKS.md).
DEFAULT_LAYERS: dict[str, tuple[tuple[str, ...], str]] = {
    "vgg19": (("features.1", "features.6", "features.11", "features.20", "features.29"), "features.22"),
    "vgg16": (("features.1", "features.6", "features.11", "features.18", "features.25"), "features.20"),
    "efficientnet_lite": (("stem", "blocks.1.expand", "blocks.3.expand", "blocks.5.expand",
                           "blocks.11.expand"), "blocks.6.expand"),
    "fashion_cnn": (("features.block1.act", "features.block2.act", "features.block3.act"),
                    "features.block2.act"),
}
SMOOTH_OFF = ("vgg", "alexnet")  # the plain Gram matrix already works on these


def default_layers(handle: ModelHandle) -> tuple[list[str], str]:
    """The style layers and the content layer for ``handle``'s backbone.

    Known backbones use :data:`DEFAULT_LAYERS`; any other model uses up to five
    conv layers spread over its depth for style and the one two thirds deep for content.
    """
    for prefix, (style_layers, content_layer) in DEFAULT_LAYERS.items():
        if handle.name.startswith(prefix):
            return list(style_layers), content_layer
    convs = [name for name, m in handle.model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise CnnvizError(f"{handle.name} has no Conv2d layer: give style_layers and content_layer by name")
    picks = sorted({round(i * (len(convs) - 1) / 4) for i in range(5)})
    return [convs[i] for i in picks], convs[round((len(convs) - 1) * 2 / 3)]


def default_smooth(handle: ModelHandle) -> bool:
    """Softmax smoothing on, except for VGG-like plain stacks."""
    return not handle.name.startswith(SMOOTH_OFF)


# ------------------------------------------------------------------------ the pieces

def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``F F^T / (H W)`` of ``(B, C, H, W)`` features: ``(B, C, C)``."""
    if features.dim() != 4:
        raise CnnvizError(f"a Gram matrix needs (B, C, H, W) features, got shape {tuple(features.shape)}")
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


def softmax_smooth(features: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """SWAG's softmax over all of a layer's values per image, times their number (mean one).

    Args:
        features: ``(B, ...)`` activations.
        scale: the activations are divided by it first (a temperature).
    """
    flat = features.flatten(1) / scale
    return (flat.softmax(1) * flat.shape[1]).view_as(features)


@dataclass(frozen=True)
class Smoothing:
    """How a layer's activations are transformed before the losses: a softmax at ``scale``, or nothing."""

    scale: float | None = None

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.scale is None else softmax_smooth(features, self.scale)

    @staticmethod
    def fit(target: torch.Tensor, temperature: float | None) -> Smoothing:
        """Smoothing at ``temperature`` times the standard deviation of ``target`` (None: off)."""
        if temperature is None:
            return Smoothing(None)
        return Smoothing(temperature * float(target.float().std().clamp(min=1e-6)))


def style_loss(layer: str, style_features: torch.Tensor, smoothing: Smoothing = Smoothing()) -> Objective:
    """``||G(x) - G(s)||^2 / ||G(s)||^2`` at ``layer`` (a loss: subtract it).

    Args:
        layer: the layer's name.
        style_features: the style image's activations there, ``(1, C, H, W)`` (any H, W).
        smoothing: applied to both activations before the Gram matrices.
    """
    target = gram(smoothing(style_features.detach()))
    norm = target.flatten(1).pow(2).sum(1).clamp(min=1e-12)

    def fn(c: Context) -> torch.Tensor:
        return (gram(smoothing(c.activations[layer])) - target).flatten(1).pow(2).sum(1) / norm
    return Objective(fn, f"style[{layer}]", [layer], uses_logits=False)


def content_loss(layer: str, content_features: torch.Tensor, smoothing: Smoothing = Smoothing()) -> Objective:
    """``||phi(x) - phi(c)||^2 / ||phi(c)||^2`` at ``layer``, one content per image (a loss: subtract it)."""
    target = smoothing(content_features.detach())
    norm = target.flatten(1).pow(2).sum(1).clamp(min=1e-12)

    def fn(c: Context) -> torch.Tensor:
        return (smoothing(c.activations[layer]) - target).flatten(1).pow(2).sum(1) / norm
    return Objective(fn, f"content[{layer}]", [layer], uses_logits=False)


def _logged(objective: Objective, name: str, log: dict[str, torch.Tensor], fresh: dict[str, bool]) -> Objective:
    """``objective``, writing its value into ``log[name]`` at the first evaluation of each step.

    The first evaluation is at the point the step starts from; L-BFGS's later ones are line-search
    trials that may be rejected, so logging them would misreport the loss.
    """
    def fn(c: Context) -> torch.Tensor:
        value = objective(c)
        if fresh["step"]:
            log[name] = value.detach()
            if name == "tv":  # the last term of the sum: this evaluation is logged
                fresh["step"] = False
        return value
    return Objective(fn, objective.name, objective.layers, uses_logits=objective.uses_logits)


_ZERO = Objective(lambda c: torch.zeros(c.images.shape[0], device=c.images.device), "zero",
                  uses_logits=False)


def _logged_final(handle: ModelHandle, total: Objective, images: torch.Tensor, fresh: dict[str, bool]) -> None:
    """Evaluate the terms once more on the final images, so the history ends after the last step."""
    fresh["step"] = True
    modules = {n: handle.layer(n) for n in total.layers}
    with torch.no_grad(), record(modules) as rec:
        logits = run_until(handle, images, modules.values())
    total(Context(images, images, logits, {n: r.output for n, r in rec.items()}))


_KR, _KB = 0.299, 0.114  # ITU-R BT.601 luma weights


def rgb_to_ycbcr(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] to Y, Cb, Cr (BT.601, chroma centred on 0)."""
    r, g, b = images.unbind(1)
    y = _KR * r + (1 - _KR - _KB) * g + _KB * b
    return torch.stack([y, (b - y) / (2 * (1 - _KB)), (r - y) / (2 * (1 - _KR))], 1)


def ycbcr_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    y, cb, cr = images.unbind(1)
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = (y - _KR * r - _KB * b) / (1 - _KR - _KB)
    return torch.stack([r, g, b], 1)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized luminance with the content's chroma (Gatys et al. 2017, luminance-only transfer).

    Gray images (one channel) come back unchanged.
    """
    if stylized.shape[1] != 3:
        return stylized
    if content.shape[-2:] != stylized.shape[-2:]:
        content = _resize(content, stylized.shape[-2:])
    mixed = torch.cat([rgb_to_ycbcr(stylized)[:, :1], rgb_to_ycbcr(content)[:, 1:]], 1)
    return ycbcr_to_rgb(mixed).clamp(0, 1)


def _resize(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == size:
        return images
    shrink = size[0] < images.shape[-2]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def fit_side(height: int, width: int, side: int) -> tuple[int, int]:
    """``(height, width)`` scaled so the longer side is ``side``."""
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def octave_sizes(height: int, width: int, coarse: int | None) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes ending at ``(height, width)``: halve while the longer side stays >= ``coarse``."""
    sizes = [(height, width)]
    if coarse is None:
        return sizes
    while max(sizes[0]) // 2 >= coarse:
        h, w = sizes[0]
        sizes.insert(0, (max(1, h // 2), max(1, w // 2)))
    return sizes


def _features(handle: ModelHandle, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    modules = {n: handle.layer(n) for n in layers}
    with torch.no_grad(), record(modules) as rec:
        run_until(handle, images, modules.values())  # no classifier: any image size works
    return {n: rec[n].output for n in layers}


def _layer_list(layers: str | Sequence[str] | None) -> list[str] | None:
    if layers is None:
        return None
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",")]
    layers = [layer for layer in layers if layer]
    if not layers:
        raise CnnvizError("no style layer given: name at least one (comma-separated)")
    return list(dict.fromkeys(layers))


@dataclass
class StyleResult:
    """What :func:`style_transfer` returns.

    Attributes:
        images: the stylized images ``(B, C, H, W)`` in [0, 1], on the model's device.
        history: per term (``content``, ``style``, ``tv`` unweighted; ``total`` weighted),
            the loss per image before each step and, last row, after the final one
            ``(steps + 1, B)``, over all octaves.
        octaves: ``(height, width, steps)`` of each coarse-to-fine stage.
        seconds: wall-clock time of the optimization (targets included).
        style_layers, content_layer: the layers used.
        smoothing: whether the softmax smoothing was on.
        restarts: how often L-BFGS stalled (its line search found no step) and restarted afresh.
    """

    images: torch.Tensor
    history: dict[str, torch.Tensor]
    octaves: list[tuple[int, int, int]] = field(default_factory=list)
    seconds: float = 0.0
    style_layers: list[str] = field(default_factory=list)
    content_layer: str = ""
    smoothing: bool = False
    restarts: int = 0

    def final_losses(self) -> dict[str, list[float]]:
        """The last step's loss of each term, per image."""
        return {name: values[-1].tolist() for name, values in self.history.items()}


@method("style", "optimization", "neural style transfer (Gatys et al.), softmax-smoothed for non-VGG backbones", order=140)
def style_transfer(handle: ModelHandle, images: torch.Tensor | None = None, target: object = None, *,
                   style: torch.Tensor | None = None, size: ImageSide | None = None, steps: PositiveInt = 300,
                   optimizer: Optimizer = "lbfgs", lr: PositiveFloat | None = None, content_weight: NonNegativeFloat = 1.0,
                   style_weight: NonNegativeFloat = 1e4, tv_weight: NonNegativeFloat = 100.0, init: Init = "content",
                   smooth: bool | None = None, temperature: PositiveFloat = 10.0,
                   style_layers: str | Sequence[str] | None = None, content_layer: str | None = None,
                   style_scale: PositiveFloat = 1.0, coarse: ImageSide | None = None, preserve_colors: bool = False,
                   seed: int = 0, progress: bool = True) -> StyleResult:
    """Repaint the content ``images`` in the texture of ``style``.

    Args:
        images: content images ``(B, C, H, W)`` in [0, 1].
        style: the style image ``(C, H, W)`` or ``(1, C, H, W)`` in [0, 1], any size.
        size: longer side of the output (default: the content's own size).
        steps: optimizer steps (at the coarsest octave; finer octaves take half as many). L-BFGS
            restarts with a fresh memory when its line search stalls (counted in ``restarts``).
        optimizer: lbfgs or adam.
        lr: learning rate (default: 1 for lbfgs, 0.02 for adam).
        content_weight: weight of the content loss.
        style_weight: weight of the style loss (summed over the style layers).
        tv_weight: weight of the total variation of the picture.
        init: start from the content image or from noise.
        smooth: softmax-smooth the activations (Wang et al. 2021); default: on except for VGG.
        temperature: softmax temperature, in units of each layer's standard deviation.
        style_layers: layer names, comma-separated or a list (default: the backbone's).
        content_layer: layer name (default: the backbone's).
        style_scale: size of the style image relative to the output (smaller: finer texture).
        coarse: longer side of the first coarse-to-fine octave; each next octave doubles it
            (default: 512 when size >= 1024, else one octave).
        preserve_colors: keep the content's colours, transfer only luminance (YCbCr).
        seed: seeds the noise start.

    Returns:
        A :class:`StyleResult` with the images and the loss history per term.
    """
    style_image = _checked_style(handle, images, target, style)
    start = time.perf_counter()
    chosen_style, chosen_content = default_layers(handle)
    layers_style = _layer_list(style_layers) or chosen_style
    layer_content = content_layer or chosen_content
    for name in [*layers_style, layer_content]:
        handle.layer(name)  # unknown names fail here, before any work
    smoothing_on = default_smooth(handle) if smooth is None else bool(smooth)
    losses = _Losses({"content": content_weight, "style": style_weight, "tv": tv_weight}, images.shape[0])
    learning_rate = lr or (1.0 if optimizer == "lbfgs" else 0.02)
    octaves: list[tuple[int, int, int]] = []
    current: torch.Tensor | None = None
    total = _ZERO
    for octave, (h, w) in enumerate(octave_plan(images.shape[-2:], size, coarse)):
        content = _resize(images, (h, w))
        scaled_style = _resize(style_image, _shorter_side(style_image.shape[-2:], min(h, w) * style_scale))
        total = losses.objective(_terms(handle, content, scaled_style, layers_style, layer_content,
                                        temperature if smoothing_on else None))
        start_images = (content if init == "content" else _noise(content, seed)) if current is None \
            else _resize(current, (h, w))
        image = param.PixelImage(start_images) if optimizer == "adam" else _FreePixels(start_images)
        octave_steps = steps if octave == 0 else max(1, steps // 2)
        current = losses.run(handle, image, total, octave_steps, learning_rate, optimizer, seed, progress,
                             f"style {h}x{w}")
        octaves.append((h, w, octave_steps))
    assert current is not None
    _logged_final(handle, total, current, losses.fresh)
    losses.keep(None, -1)
    if preserve_colors:
        current = preserve_color(current, _resize(images, current.shape[-2:]))
    if handle.device.type == "cuda":
        torch.cuda.synchronize(handle.device)
    return StyleResult(current, losses.stacked(), octaves, time.perf_counter() - start, layers_style, layer_content,
                       smoothing_on, losses.restarts)


def _checked_style(handle: ModelHandle, images: torch.Tensor | None, target: object,
                   style: torch.Tensor | None) -> torch.Tensor:
    """The style image as a ``(1, C, H, W)`` batch on the device; what the option ranges cannot say is checked
    here (the ranges themselves are declared in the signature and checked by the registry)."""
    if images is None:
        raise CnnvizError("style transfer needs content images: pass a batch (B, C, H, W)")
    if target is not None:
        raise CnnvizError("style transfer takes no class target: give a style image with style=")
    if style is None or not isinstance(style, torch.Tensor):
        raise CnnvizError("give a style image: style=<(C, H, W) tensor in [0, 1]>, e.g. zoo.load_image('gravel')")
    if style.dim() == 4 and style.shape[0] == 1:
        style = style[0]
    if style.dim() != 3:
        raise CnnvizError(f"the style image must be (C, H, W) or (1, C, H, W), got shape {tuple(style.shape)}")
    return match_channels(style.detach().to(handle.device, torch.float32), handle.in_channels)[None]


def octave_plan(shape: Sequence[int], size: int | None, coarse: int | None) -> list[tuple[int, int]]:
    """The ``(h, w)`` of each coarse-to-fine octave: the output fits ``size`` (default: the content's own),
    and a large output (1024 px and up) starts from 512 px unless ``coarse`` says otherwise."""
    height, width = shape if size is None else fit_side(*shape, size)
    if coarse is None and max(height, width) >= 1024:
        coarse = 512
    return octave_sizes(height, width, coarse)


def _terms(handle: ModelHandle, content: torch.Tensor, style: torch.Tensor, layers_style: list[str],
           layer_content: str, temperature: float | None) -> dict[str, Objective]:
    """The content, style and TV terms of one octave, with the targets' features taken at its size."""
    style_feats = _features(handle, style, layers_style)
    content_feats = _features(handle, content, [layer_content])[layer_content]
    style_term: Objective | float = 0.0
    for name in layers_style:
        style_term = style_term + style_loss(name, style_feats[name], Smoothing.fit(style_feats[name], temperature))
    return {"content": content_loss(layer_content, content_feats, Smoothing.fit(content_feats, temperature)),
            "style": (1.0 / len(layers_style)) * style_term, "tv": objectives.total_variation()}


class _Losses:
    """The weighted terms and their history: each step's losses, logged at its first evaluation, and the
    L-BFGS restarts."""

    def __init__(self, weights: dict[str, float], batch: int) -> None:
        self.weights, self.batch, self.restarts = weights, batch, 0
        self.history: dict[str, list[torch.Tensor]] = {"content": [], "style": [], "tv": [], "total": []}
        self.log: dict[str, torch.Tensor] = {}
        self.fresh = {"step": True}

    def objective(self, terms: dict[str, Objective]) -> Objective:
        return sum((self.weights[k] * _logged(v, k, self.log, self.fresh) for k, v in terms.items()), start=_ZERO)

    def keep(self, _image: nn.Module | None, _step: int) -> None:
        """Append the losses at the start of the step just taken (its first evaluation)."""
        values = {k: self.log[k].cpu() for k in self.weights}
        for k, v in values.items():
            self.history[k].append(v)
        self.history["total"].append(sum(self.weights[k] * values[k] for k in self.weights))
        self.fresh["step"] = True

    def stalled(self, _context: Context) -> torch.Tensor:
        """True when the last two steps started from the same loss: the point did not move."""
        totals = self.history["total"]
        same = len(totals) >= 2 and torch.equal(totals[-1], totals[-2])
        return torch.full((self.batch,), same, dtype=torch.bool)

    def run(self, handle: ModelHandle, image: nn.Module, total: Objective, steps: int, lr: float, optimizer: str,
            seed: int, progress: bool, desc: str) -> torch.Tensor:
        """``steps`` steps of one octave; L-BFGS restarts with a fresh memory when its line search stalls."""
        remaining = steps
        while remaining > 0:
            done = len(self.history["total"])
            result = engine.optimize(handle, image, -total, steps=remaining, lr=lr, optimizer=optimizer,
                                     every_step=self.keep, until=self.stalled if optimizer == "lbfgs" else None,
                                     seed=seed, progress=progress, desc=desc)
            remaining -= len(self.history["total"]) - done
            self.restarts += remaining > 0
        return result.images.clamp(0, 1)

    def stacked(self) -> dict[str, torch.Tensor]:
        return {k: torch.stack(v) for k, v in self.history.items()}


class _FreePixels(param.PixelImage):
    """Raw pixels not clamped between steps: clamping moves the point behind L-BFGS's back, its
    curvature pairs go wrong and the line search stalls. The result is clamped once at the end."""

    def project(self) -> None:
        """Nothing: see the class docstring."""


def _shorter_side(shape: Sequence[int], side: float) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    scale = max(8, round(side)) / min(h, w)
    return max(8, round(h * scale)), max(8, round(w * scale))


def _noise(like: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator(device=like.device).manual_seed(seed)
    return torch.rand(like.shape, generator=generator, device=like.device)
