"""Objectives to maximize, composable with ``+``, ``-`` and ``*``.

An objective maps the step's :class:`Context` to one score per image
``(B,)``; the engine maximizes their sum. Objectives that read a layer name
it in ``layers`` so the engine records that layer. Regularizers are
objectives too, used with a negative weight::

    objective = class_logit(1) - 1e-3 * total_variation() + 2 * channel("blocks.10", 5)

Targets may differ per image (an index tensor ``(B,)``), so 64 classes or
every channel of a layer are optimized in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from cnnviz.zoo.core import CnnvizError

Index = int | Sequence[int] | torch.Tensor


@dataclass
class Context:
    """What one optimization step produced.

    Attributes:
        images: the parameterized images ``(B, C, H, W)`` in [0, 1], before transforms.
        inputs: what went into the model (after transforms).
        logits: the model output (None when the objective does not use it and the pass stopped early).
        activations: recorded layer outputs by layer name.
    """

    images: torch.Tensor
    inputs: torch.Tensor
    logits: torch.Tensor | None
    activations: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """A score per image, to maximize. Combine with ``+``, ``-`` and scalar ``*``.

    ``uses_logits=False`` declares that the score reads only recorded layers
    and the images, so the engine may stop the forward pass after the last
    recorded layer (faster, and any input size works on models with a dense head).
    """

    def __init__(self, fn: Callable[[Context], torch.Tensor], name: str, layers: Sequence[str] = (), *,
                 uses_logits: bool = True) -> None:
        self.fn, self.name, self.layers = fn, name, tuple(dict.fromkeys(layers))
        self.uses_logits = uses_logits

    def __call__(self, context: Context) -> torch.Tensor:
        return self.fn(context)

    def __add__(self, other: Objective | float) -> Objective:
        if not isinstance(other, Objective):
            return Objective(lambda c: self(c) + other, f"{self.name} + {other}", self.layers,
                             uses_logits=self.uses_logits)
        return Objective(lambda c: self(c) + other(c), f"{self.name} + {other.name}", self.layers + other.layers,
                         uses_logits=self.uses_logits or other.uses_logits)

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return Objective(lambda c: -self(c), f"-({self.name})", self.layers, uses_logits=self.uses_logits)

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __mul__(self, weight: float) -> Objective:
        if isinstance(weight, Objective):
            return Objective(lambda c: self(c) * weight(c), f"{self.name} * {weight.name}",
                             self.layers + weight.layers, uses_logits=self.uses_logits or weight.uses_logits)
        return Objective(lambda c: weight * self(c), f"{weight} * {self.name}", self.layers,
                         uses_logits=self.uses_logits)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def _per_image(index: Index, batch: int, device: torch.device) -> torch.Tensor:
    index = torch.as_tensor(index, device=device).long().flatten()
    if index.numel() not in (1, batch):
        raise CnnvizError(f"{index.numel()} targets for a batch of {batch}: give one, or one per image")
    return index.expand(batch)


def _channels(index: Index, act: torch.Tensor, layer: str) -> torch.Tensor:
    """One channel index per image, checked against the layer's channel count."""
    channels = _per_image(index, act.shape[0], act.device)
    if channels.numel() and not (0 <= int(channels.min()) and int(channels.max()) < act.shape[1]):
        raise CnnvizError(f"channel {channels.tolist()[0] if channels.max() < 0 else int(channels.max())} is out "
                          f"of range: {layer} has channels 0..{act.shape[1] - 1}")
    return channels


def class_logit(index: Index) -> Objective:
    """The logit of class ``index`` (one per image allowed)."""
    def fn(c: Context) -> torch.Tensor:
        return c.logits.gather(1, _per_image(index, c.logits.shape[0], c.logits.device)[:, None])[:, 0]
    return Objective(fn, f"logit[{index}]")


def class_log_prob(index: Index) -> Objective:
    """The log-probability of class ``index``: raises it and pushes the other classes down."""
    def fn(c: Context) -> torch.Tensor:
        log_probs = c.logits.log_softmax(-1)
        return log_probs.gather(1, _per_image(index, c.logits.shape[0], c.logits.device)[:, None])[:, 0]
    return Objective(fn, f"log_prob[{index}]")


def _activation(c: Context, layer: str) -> torch.Tensor:
    return c.activations[layer]


def channel(layer: str, index: Index) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` (one channel per image allowed)."""
    def fn(c: Context) -> torch.Tensor:
        act = _activation(c, layer)
        picked = act.gather(1, _channels(index, act, layer).view(-1, 1, *([1] * (act.dim() - 2)))
                            .expand(-1, 1, *act.shape[2:]))
        return picked.flatten(1).mean(1)
    return Objective(fn, f"{layer}:{index}", [layer], uses_logits=False)


def neuron(layer: str, index: Index, y: int | None = None, x: int | None = None) -> Objective:
    """One unit: channel ``index`` of ``layer`` at ``(y, x)`` (default: the centre)."""
    def fn(c: Context) -> torch.Tensor:
        act = _activation(c, layer)
        row = act.shape[2] // 2 if y is None else y
        col = act.shape[3] // 2 if x is None else x
        if not (0 <= row < act.shape[2] and 0 <= col < act.shape[3]):
            raise CnnvizError(f"unit ({row}, {col}) is outside {layer}'s {act.shape[2]}x{act.shape[3]} map")
        channels = _channels(index, act, layer)
        return act[torch.arange(act.shape[0], device=act.device), channels, row, col]
    return Objective(fn, f"{layer}:{index}:{y}:{x}", [layer], uses_logits=False)


def dream(layer: str) -> Objective:
    """Mean squared activation of ``layer``: DeepDream's "amplify whatever is there"."""
    return Objective(lambda c: _activation(c, layer).pow(2).flatten(1).mean(1), f"dream[{layer}]", [layer],
                     uses_logits=False)


def feature_match(layer: str, target: torch.Tensor) -> Objective:
    """Minus the normalized distance ``||phi(x) - phi0||^2 / ||phi0||^2`` to a target embedding."""
    target = target.detach()
    norm = target.flatten(1).pow(2).sum(1).clamp(min=1e-12)

    def fn(c: Context) -> torch.Tensor:
        return -(_activation(c, layer) - target).flatten(1).pow(2).sum(1) / norm
    return Objective(fn, f"match[{layer}]", [layer], uses_logits=False)


def diversity(layer: str) -> Objective:
    """Minus the mean cosine similarity of each image's Gram matrix with the others' (batch of >= 2)."""
    def fn(c: Context) -> torch.Tensor:
        act = _activation(c, layer).flatten(2)
        gram = torch.nn.functional.normalize((act @ act.transpose(1, 2)).flatten(1), dim=1)
        similarity = gram @ gram.T
        batch = similarity.shape[0]
        return -(similarity.sum(1) - similarity.diagonal()) / max(batch - 1, 1)
    return Objective(fn, f"diversity[{layer}]", [layer], uses_logits=False)


def diversity_within(layer: str, group: int) -> Objective:
    """:func:`diversity` inside each block of ``group`` consecutive images (several pictures of one unit in a
    batch that holds many units: each is pushed away from its own unit's others only).

    Example:
        >>> context = Context(None, None, None, {"a": torch.rand(4, 3, 5, 5)})
        >>> torch.allclose(diversity_within("a", 4)(context), diversity("a")(context))
        True
    """
    def fn(c: Context) -> torch.Tensor:
        act = _activation(c, layer)
        if act.shape[0] % group:
            raise CnnvizError(f"a batch of {act.shape[0]} images is not made of blocks of {group}")
        blocks = act.flatten(2).unflatten(0, (-1, group))
        gram = torch.nn.functional.normalize((blocks @ blocks.transpose(2, 3)).flatten(2), dim=2)
        similarity = gram @ gram.transpose(1, 2)
        others = similarity.sum(2) - similarity.diagonal(dim1=1, dim2=2)
        return (-others / max(group - 1, 1)).flatten()
    return Objective(fn, f"diversity[{layer}]/{group}", [layer], uses_logits=False)


def over_views(objective: Objective, count: int) -> Objective:
    """The mean of ``objective`` over ``count`` views of each image (the inputs hold the views view-major, as
    :func:`transforms.views` makes them): one score per image again."""
    if count == 1:
        return objective

    def fn(c: Context) -> torch.Tensor:
        batch = c.images.shape[0]

        def view(v: int) -> Context:
            rows = slice(v * batch, (v + 1) * batch)
            return Context(c.images, c.inputs[rows], None if c.logits is None else c.logits[rows],
                           {name: act[rows] for name, act in c.activations.items()})
        return torch.stack([objective(view(v)) for v in range(count)]).mean(0)
    return Objective(fn, f"mean of {count} views of {objective.name}", objective.layers,
                     uses_logits=objective.uses_logits)


# --- regularizers: objectives on the image itself, to be subtracted -------------------------------------

def l2(center: float = 0.5) -> Objective:
    """Mean squared distance of the pixels from ``center`` (L2 decay)."""
    return Objective(lambda c: (c.images - center).pow(2).flatten(1).mean(1), "l2", uses_logits=False)


def alpha_norm(alpha: float = 6.0, center: float = 0.5) -> Objective:
    """Mean ``|x - center|^alpha``: keeps pixel values in a natural range (Mahendran & Vedaldi)."""
    return Objective(lambda c: (c.images - center).abs().pow(alpha).flatten(1).mean(1), f"alpha_norm[{alpha}]",
                     uses_logits=False)


def total_variation(beta: float = 2.0) -> Objective:
    """Mean ``(dx^2 + dy^2)^(beta/2)`` over the two spatial axes (channels are not differenced)."""
    def fn(c: Context) -> torch.Tensor:
        images = c.images
        dy = images[:, :, 1:, :-1] - images[:, :, :-1, :-1]
        dx = images[:, :, :-1, 1:] - images[:, :, :-1, :-1]
        return (dx.pow(2) + dy.pow(2) + 1e-8).pow(beta / 2).flatten(1).mean(1)
    return Objective(fn, f"tv[{beta}]", uses_logits=False)
