"""Layer-wise relevance propagation (Bach et al. 2015) on zennit's rules, for any CNN we can canonize.

The network is canonized on a copy (:mod:`interpret.attribution.canonize`: batch norm folded, every operation of
the traced graph given its rule by :mod:`interpret.attribution.relevance_graph`; the copy is kept for the next call
while the model's weights stay the same), zennit's composite attaches its rules to the copy, and one backward pass
from the target logit carries the relevance down to the network's input. The relevance lives where the network sees
its input, after the handle's normalization, so it sums to the target logit (for the conserving rules) instead of
being rescaled by ``1 / std``.

Composites (Kotz et al. 2021, zennit's names):

- ``epsilon_plus_flat``: flat rule on the first layer, z+ on convolutions, epsilon on dense layers;
- ``epsilon_gamma_box``: z-box (bounded by the pixel range after normalization) on the first layer, gamma = 0.25
  on convolutions, epsilon on dense layers;
- ``epsilon_alpha2_beta1``: alpha = 2, beta = 1 on convolutions, epsilon on dense layers.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> interpret.lrp(handle, images, composite="epsilon_gamma_box").shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Literal, get_args

import torch
from torch import nn

from cnnviz.interpret.attribution.canonize import canonized_copy
from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import ResolvedTarget, Target, resolve_target, take, target_scores
from cnnviz.zoo.core import CnnvizError, PositiveInt
from cnnviz.zoo.handle import ModelHandle, select_logits

CompositeName = Literal["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1"]
COMPOSITES: tuple[str, ...] = get_args(CompositeName)


def check_composite(composite: str) -> str:
    """``composite`` if it is one we run, else one line listing them."""
    if composite not in COMPOSITES:
        raise CnnvizError(f"unknown LRP composite {composite!r}: choose from {', '.join(COMPOSITES)}")
    return composite


def zennit_composite(composite: str, handle: ModelHandle) -> Any:
    """zennit's composite called ``composite``; the z-box bounds are the pixel range [0, 1] after normalization.

    The z+ rule of ``epsilon_plus_flat`` is :class:`~interpret.attribution.lrp_rules.NonNegativeZPlus`: zennit's
    rule, skipping the half that a layer reading a ReLU output does not need (same relevance, less work).
    """
    from zennit import composites
    from zennit.types import Convolution

    from cnnviz.interpret.attribution.lrp_rules import NonNegativeZPlus

    check_composite(composite)
    if composite == "epsilon_gamma_box":
        low, high = (0 - handle.mean) / handle.std, (1 - handle.mean) / handle.std
        return composites.EpsilonGammaBox(low=low, high=high)
    if composite == "epsilon_plus_flat":
        return composites.EpsilonPlusFlat(layer_map=[(Convolution, NonNegativeZPlus())])
    return composites.COMPOSITES[composite]()


class Logits(nn.Module):
    """The canonized copy of a handle's network, returning its logits from normalized images.

    ``lock`` is held while rules are attached (the copy is shared by every call on the same model).
    """

    def __init__(self, network: nn.Module, output: Any, lock: threading.RLock | None = None) -> None:
        super().__init__()
        self.network = network
        self.output = output
        self.lock = lock or threading.RLock()

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        return select_logits(self.network(normalized), self.output)


def relevance_network(handle: ModelHandle) -> Logits:
    """A canonized copy of ``handle``'s network: normalized images in, logits out; ``handle`` is untouched.

    The copy is made once per model and reused while its weights and buffers stay the same.
    """
    if not handle.config.hookable:
        raise CnnvizError(f"{handle.name} is a saved program ({handle.config.source}) whose layers take no rules, so "
                          "LRP and concept relevance cannot run on it: load the architecture as Python code "
                          "(file.py:FACTORY, torchvision:NAME, timm:NAME)")
    kept = canonized_copy(handle.model)
    return Logits(kept.network, handle.output, kept.lock)


def normalized(handle: ModelHandle, images: torch.Tensor) -> torch.Tensor:
    """``images`` in [0, 1] as the network sees them."""
    return (images - handle.mean) / handle.std


@contextmanager
def rules(network: Logits, handle: ModelHandle, composite: str | None) -> Iterator[None]:
    """zennit's rules on ``network`` for the block (``None``: plain gradients); they are removed afterwards."""
    if composite is None:
        yield
        return
    with network.lock, zennit_composite(composite, handle).context(network):
        yield


def propagate(handle: ModelHandle, network: nn.Module, images: torch.Tensor, target: ResolvedTarget, *,
              lrp: bool, batch_size: int | None = None,
              hooks: Callable[[slice], Any] | None = None) -> torch.Tensor:
    """Relevance at the network's input ``(B, C, H, W)``, from one backward pass per batch of rows.

    With ``lrp`` the relevance starts as the target score at the output and the rules already attached to
    ``network`` turn the backward pass into relevance; without, it is gradient x input. ``hooks(rows)`` may return
    a context manager that is active around each batch's forward and backward pass (concept masks).
    """
    relevance = torch.empty_like(images)
    for rows in chunks(images.shape[0], batch_size or auto_batch_size(handle, backward=True)):
        inputs = normalized(handle, images[rows]).detach().requires_grad_(True)
        with torch.enable_grad(), (hooks(rows) if hooks else nullcontext()):
            scores = target_scores(handle, take(target, rows), network(inputs))
            start = scores.detach() if lrp else torch.ones_like(scores)
            (grads,) = torch.autograd.grad(scores, inputs, grad_outputs=start)
        relevance[rows] = grads if lrp else grads * inputs.detach()
    return relevance


@method("lrp", "attribution", "layer-wise relevance propagation (zennit's rules) on a canonized copy",
        group="gradients", order=25)
def lrp(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
        composite: CompositeName = "epsilon_plus_flat", channels: bool = False,
        batch_size: PositiveInt | None = None) -> torch.Tensor:
    """Layer-wise relevance propagation (Bach et al. 2015) with one of zennit's composites.

    Args:
        composite: the rules: epsilon_plus_flat, epsilon_gamma_box or epsilon_alpha2_beta1.
        channels: keep the relevance of each colour channel ``(B, C, H, W)`` instead of their sum.
        batch_size: images per backward pass (default: sized to the device).

    Returns:
        Signed relevance ``(B, 1, H, W)``; per image it sums to about the target logit.
    """
    check_composite(composite)
    indices = resolve_target(handle, images, target)
    network = relevance_network(handle)
    with rules(network, handle, composite):
        relevance = propagate(handle, network, images, indices, lrp=True, batch_size=batch_size)
    return relevance if channels else relevance.sum(1, keepdim=True)
