"""Concept-conditional relevance (CRP, Achtibat et al. 2023): a heatmap split into the channels of one layer.

The relevance that reaches a layer is summed per channel (the channel's share of the decision); then, for each of
K channels, the backward pass is run again with the relevance at that layer kept on the channel alone, which gives
the channel's own input map: *where* in the image the concept the channel stands for was used. Backward
propagation is linear in the relevance it starts from, so the maps of all channels add up to the unconditional map.
The K masked passes run as one batch of ``B * K`` rows.

Backends: ``lrp`` (CRP proper: zennit's rules on a canonized copy, :mod:`interpret.attribution.lrp`) and
``gradient`` (gradient x activation at the layer, gradient x input at the pixels), for models LRP cannot canonize.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> images = torch.rand(1, 1, 28, 28)
    >>> found = interpret.concept_relevance(handle, images, "Trouser", layer="features.block2", channels=4)
    >>> found.maps.shape, found.channels.shape
    (torch.Size([1, 4, 28, 28]), torch.Size([1, 4]))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from cnnviz.interpret.attribution.lrp import CompositeName, Logits, check_composite, propagate, relevance_network, rules
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, resolve_target
from cnnviz.zoo.core import CnnvizError, PositiveInt, forward_hooks
from cnnviz.zoo.handle import ModelHandle, layer_name

Backend = Literal["lrp", "gradient"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@dataclass
class ConceptRelevance:
    """What :func:`concept_relevance` finds, per image ``b`` and concept ``k`` (K channels of ``layer``).

    Attributes:
        layer: the layer's dotted name.
        channels: ``(B, K)`` channel indices, most relevant first when chosen by count.
        relevance: ``(B, K)`` relevance reaching each channel (summed over its positions).
        shares: ``(B, K)`` that relevance over the summed |relevance| of all the layer's channels.
        maps: ``(B, K, H, W)`` each channel's conditional input map (summed over colour channels).
        total: ``(B, 1, H, W)`` the unconditional map; all channels' maps add up to it.
    """

    layer: str
    channels: torch.Tensor
    relevance: torch.Tensor
    shares: torch.Tensor
    maps: torch.Tensor
    total: torch.Tensor

    def record(self, b: int) -> dict[str, Any]:
        """Image ``b``'s concepts, JSON-ready: the layer and, most relevant first, each channel's relevance and
        share."""
        return {"layer": self.layer, "concepts": [
            {"channel": int(c), "relevance": float(r), "share": float(s)}
            for c, r, s in zip(self.channels[b], self.relevance[b], self.shares[b])]}

    def summary(self, b: int) -> str:
        """Image ``b``'s concepts in one line: ``layer: #channel share, ...``, most relevant first."""
        return f"{self.layer}: " + ", ".join(f"#{int(c)} {float(s):+.1%}" for c, s in zip(self.channels[b],
                                                                                          self.shares[b]))


@contextmanager
def _at_layer(module: nn.Module, name: str, *, masks: torch.Tensor | None = None,
              seen: list[torch.Tensor] | None = None, lrp: bool = True) -> Iterator[None]:
    """During the block, mask the relevance arriving at ``module``'s output (``masks``: one row per image) and/or
    keep the relevance of each unit that reached it (``seen``: ``(B, C, ...)``)."""

    def hook(_: nn.Module, __: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            raise CnnvizError(f"layer {name!r} gives {type(output).__name__} "
                              f"{tuple(getattr(output, 'shape', ()))}, which has no channels: pick a convolution "
                              "or block whose output is (B, C, ...)")

        def on_grad(grad: torch.Tensor) -> torch.Tensor:
            if seen is not None:
                seen.append(grad if lrp else grad * output.detach())
            if masks is None:
                return grad
            return grad * masks.view(*masks.shape, *[1] * (grad.dim() - 2)).to(grad.dtype)

        output.register_hook(on_grad)

    with forward_hooks([(module, hook)]):
        yield


def _chosen_channels(relevance: torch.Tensor, channels: int | Sequence[int], layer: str) -> torch.Tensor:
    """``(B, K)`` channel indices: the K most relevant per image, or the given list for every image."""
    count = relevance.shape[1]
    if isinstance(channels, int) and not isinstance(channels, bool):
        if not 1 <= channels <= count:
            raise CnnvizError(f"channels={channels} but layer {layer!r} has {count} channels: give 1 to {count} "
                              "(--top on the command line)")
        return relevance.topk(channels, dim=1).indices
    chosen = [int(c) for c in channels]
    bad = [c for c in chosen if not 0 <= c < count]
    if not chosen or bad:
        raise CnnvizError(f"channels {bad or '[]'} are not channels of layer {layer!r}, which has 0..{count - 1}")
    return torch.tensor(chosen, device=relevance.device).expand(relevance.shape[0], -1)


def relevance_setup(handle: ModelHandle, layer: str | nn.Module, backend: str,
                  composite: str) -> tuple[str, bool, Logits, nn.Module]:
    """The layer's name, whether LRP runs, the network it runs on and the layer in it; bad choices refused."""
    if backend not in ("lrp", "gradient"):
        raise CnnvizError(f"unknown concept backend {backend!r}: choose lrp or gradient")
    check_composite(composite)
    name = layer if isinstance(layer, str) else layer_name(handle.model, layer)
    handle.layer(name)  # unknown names get the closest matches
    lrp = backend == "lrp"
    network = relevance_network(handle) if lrp else Logits(handle.model, handle.output)
    return name, lrp, network, network.network.get_submodule(name)


def unconditional_pass(handle: ModelHandle, network: Logits, module: nn.Module, name: str, images: torch.Tensor,
                   indices: Any, lrp: bool, batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The unconditional input relevance ``(B, C, H, W)`` and the relevance of each unit of the layer
    ``(B, C', ...)``, from one pass (rules already attached)."""
    seen: list[torch.Tensor] = []
    with _at_layer(module, name, seen=seen, lrp=lrp):
        total = propagate(handle, network, images, indices, lrp=lrp, batch_size=batch_size)
    return total, torch.cat(seen)


def layer_relevance(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, layer: str,
                    backend: Backend = "lrp", composite: CompositeName = "epsilon_plus_flat",
                    batch_size: int | None = None) -> torch.Tensor:
    """The relevance reaching each unit of ``layer`` ``(B, C, ...)`` (the layer's output shape), from one pass:
    summed over a channel's positions it is the channel's relevance in :func:`concept_relevance`.

    Example:
        >>> from cnnviz import zoo
        >>> handle = zoo.load("fashion_cnn", device="cpu")
        >>> layer_relevance(handle, torch.rand(2, 1, 28, 28), layer="features.block2").shape
        torch.Size([2, 64, 7, 7])
    """
    name, lrp, network, module = relevance_setup(handle, layer, backend, composite)
    indices = resolve_target(handle, images, target)
    with rules(network, handle, composite if lrp else None):
        return unconditional_pass(handle, network, module, name, images, indices, lrp, batch_size)[1]


def concept_relevance(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, layer: str,
                      channels: int | Sequence[int] = 6, backend: Backend = "lrp",
                      composite: CompositeName = "epsilon_plus_flat",
                      batch_size: int | None = None) -> ConceptRelevance:
    """Concept relevance: each channel's share of the decision and its conditional input map.

    Args:
        handle: the model; it is not changed (LRP runs on a canonized copy).
        images: ``(B, C, H, W)`` in [0, 1].
        target: the class to explain (default: each image's predicted class).
        layer: dotted name of the layer whose channels are the concepts.
        channels: K, the number of most relevant channels per image, or a list of channel indices.
        backend: ``lrp`` (CRP) or ``gradient`` (gradient x activation, for models LRP cannot canonize).
        composite: the LRP rules (backend ``lrp``).
        batch_size: rows per backward pass (the masked pass has ``B * K`` rows).

    Returns:
        A :class:`ConceptRelevance`.
    """
    name, lrp, network, module = relevance_setup(handle, layer, backend, composite)
    indices = resolve_target(handle, images, target)
    with rules(network, handle, composite if lrp else None):
        total, per_unit = unconditional_pass(handle, network, module, name, images, indices, lrp, batch_size)
        per_channel = per_unit.flatten(2).sum(-1) if per_unit.dim() > 2 else per_unit
        chosen = _chosen_channels(per_channel, channels, name)
        k = chosen.shape[1]
        masks = torch.zeros(images.shape[0] * k, per_channel.shape[1], device=images.device)
        masks[torch.arange(masks.shape[0]), chosen.flatten()] = 1

        def masked(rows: slice) -> AbstractContextManager[None]:
            return _at_layer(module, name, masks=masks[rows], lrp=lrp)

        rows_target = indices.repeat_interleave(k) if isinstance(indices, torch.Tensor) else indices
        maps = propagate(handle, network, images.repeat_interleave(k, dim=0), rows_target, lrp=lrp,
                         batch_size=batch_size, hooks=masked)
    relevance = per_channel.gather(1, chosen)
    shares = relevance / per_channel.abs().sum(1, keepdim=True).clamp_min(torch.finfo(relevance.dtype).tiny)
    return ConceptRelevance(name, chosen, relevance, shares,
                            maps.sum(1).view(images.shape[0], k, *images.shape[2:]), total.sum(1, keepdim=True))


def top_concepts(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, layer: str | None = None,
                 top: PositiveInt = 6, backend: Backend = "lrp", composite: CompositeName = "epsilon_plus_flat",
                 batch_size: PositiveInt | None = None) -> ConceptRelevance:
    """The ``top`` most relevant channels of ``layer`` (default: the model's) with their shares and maps: the full
    result of the ``concepts`` method, which the CLI and the gallery draw as a panel of concepts."""
    chosen = layer or handle.default_layer
    if chosen is None:
        raise CnnvizError(f"{handle.name} has no default layer: give layer= (--layer)")
    return concept_relevance(handle, images, target, layer=chosen, channels=top, backend=backend,
                             composite=composite, batch_size=batch_size)


@method("concepts", "attribution", "concept relevance (CRP): the maps of a layer's most relevant channels, summed",
        group="gradients", order=26, detail=top_concepts)
def concepts(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, layer: str | None = None,
             top: PositiveInt = 6, backend: Backend = "lrp", composite: CompositeName = "epsilon_plus_flat",
             batch_size: PositiveInt | None = None) -> torch.Tensor:
    """The conditional maps of the ``top`` most relevant channels of ``layer`` ``(B, top, H, W)``.

    Args:
        top: how many channels (concepts), most relevant first.
        backend: lrp (CRP) or gradient (gradient x activation).
        composite: the LRP rules (backend lrp).
        batch_size: rows per backward pass.
    """
    return top_concepts(handle, images, target, layer=layer, top=top, backend=backend, composite=composite,
                        batch_size=batch_size).maps
