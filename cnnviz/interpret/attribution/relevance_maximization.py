"""Relevance maximization (Achtibat et al. 2023): rank a dataset's images for a channel by how much the model *uses*
the channel for its decision, rather than by how strongly the channel fires.

An image's score for a channel is the channel's share of the relevance reaching its layer (its relevance summed over
positions, over the summed |relevance| of all the layer's channels), for the class the model predicts (or a given
one); the unit that receives the most relevance marks the patch. :func:`relevance_ranking` gives the per-batch
scoring that :func:`interpret.inside.neuron_atlas` streams over a dataset (``score=``), so the atlas keeps its
top-k, sharding and patches whatever it ranks by.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> values, positions = relevance_ranking(handle, "features.block2")(torch.rand(3, 1, 28, 28))
    >>> values.shape, positions.shape
    (torch.Size([3, 64]), torch.Size([3, 64]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnviz.interpret.attribution.concept_maps import Backend, relevance_setup, unconditional_pass
from cnnviz.interpret.attribution.lrp import CompositeName, rules
from cnnviz.interpret.core.targets import Target, resolve_target
from cnnviz.zoo.handle import ModelHandle

Scores = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def relevance_ranking(handle: ModelHandle, layer: str, target: Target = None, *, backend: Backend = "lrp",
                      composite: CompositeName = "epsilon_plus_flat") -> Scores:
    """Per-batch scores for ranking images by relevance: ``images -> (shares, positions)``, both ``(B, C)``.

    Args:
        handle: the model (not changed: LRP runs on its canonized copy).
        layer: the layer whose channels are ranked.
        target: the class whose relevance counts (default: each image's predicted class).
        backend: ``lrp`` (CRP) or ``gradient`` (gradient x activation, for models LRP cannot canonize).
        composite: the LRP rules (backend ``lrp``).

    Returns:
        A function of a batch ``(B, C, H, W)`` in [0, 1] giving each channel's relevance share and the flat
        position of its most relevant unit; bad choices are refused here, before any data is read.
    """
    relevance_setup(handle, layer, backend, composite)  # bad choices refused before any data is read

    def score(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        name, lrp, network, module = relevance_setup(handle, layer, backend, composite)  # the kept canonized copy
        indices = resolve_target(handle, images, target)
        with rules(network, handle, composite if lrp else None):
            _, units = unconditional_pass(handle, network, module, name, images, indices, lrp, None)
        units = units.flatten(2) if units.dim() > 2 else units[:, :, None]
        relevance = units.sum(-1)
        shares = relevance / relevance.abs().sum(1, keepdim=True).clamp_min(torch.finfo(relevance.dtype).tiny)
        return shares, units.argmax(-1)

    return score
