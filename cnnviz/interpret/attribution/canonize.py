"""Canonizing a network for relevance propagation, always on a copy: the user's module is never touched.

LRP rules are defined for linear layers and element-wise activations. The rest of a CNN gets a rule here:

- **batch norm**, an affine map that LRP cannot split fairly between its input and its shift. In eval mode it
  folds exactly into the convolution (or linear layer) before it: ``w' = w * s``, ``b' = (b - mean) * s + beta``
  with ``s = gamma / sqrt(var + eps)``. Which layer comes before which is read from the traced graph
  (``torch.fx``), or from ``nn.Sequential`` order when the forward cannot be traced. A batch norm that follows
  anything else (an activation, a concatenation as in DenseNet, a convolution that feeds other layers too) stays
  the affine map it is, with the epsilon rule (:func:`~interpret.attribution.conserving.batch_norm_forward`).
- **LayerNorm and GroupNorm** treat their statistics as constants (:mod:`interpret.attribution.conserving`).
- **everything the forwards compute between layers** (residual adds, gates, layer scale, concatenations, means):
  :func:`~interpret.attribution.relevance_graph.follow` gives each operation of the traced graph its rule, or
  refuses in one line naming it.

ReLU6 (EfficientNet-Lite) is a ``Hardtanh``; zennit counts it as an element-wise activation and passes relevance
through it unchanged (the ``Pass`` rule), as for ReLU, so no canonizing is needed for it.

Copying and tracing cost more than a small model's backward pass, so :func:`canonized_copy` keeps the copy of each
live model and makes it again only when the model's weights or buffers changed (another tensor, an in-place write,
other values: see :func:`~interpret.core.fingerprint.weights_fingerprint`) or its structure did (a module replaced,
its mode or settings changed). The copy lives as long as the model does.

Example:
    >>> import torch, torchvision
    >>> net = torchvision.models.resnet18().eval()
    >>> copy = canonized(net)
    >>> x = torch.rand(1, 3, 64, 64)
    >>> bool(torch.allclose(copy(x), net(x), atol=1e-4)), isinstance(net.bn1, torch.nn.BatchNorm2d)
    (True, True)
"""

from __future__ import annotations

import copy
import itertools
import threading
import types
import weakref
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn
from cnnviz.interpret.attribution import conserving
from cnnviz.interpret.attribution.relevance_graph import follow, plain_norm
from cnnviz.interpret.core.fingerprint import structure_fingerprint, weights_fingerprint
from cnnviz.zoo.core import CnnvizError

Linear = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BatchNorm = nn.modules.batchnorm._BatchNorm
NO_STATISTICS = ("cannot canonize this model for LRP: a batch norm keeps no running statistics "
                 "(track_running_stats=False), so it is not a fixed affine map")


class _LeafTracer(torch.fx.Tracer):
    """Traces into containers and blocks, but keeps every convolution, linear layer and batch norm whole."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, Linear) or isinstance(module, BatchNorm) and plain_norm(module) \
            or super().is_leaf_module(module, qualified_name)


def _pairs_from_graph(model: nn.Module) -> dict[str, str] | None:
    """``{batch norm: the layer before it, whose output goes nowhere else}``, or None if untraceable."""
    try:
        graph = _LeafTracer().trace(model)
    except Exception:  # noqa: BLE001 - any forward fx cannot follow (data-dependent control flow): fall back
        return None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], BatchNorm):
            continue
        before = node.args[0] if node.args else None
        if isinstance(before, torch.fx.Node) and before.op == "call_module" \
                and isinstance(modules[before.target], Linear) \
                and len(before.users) == 1 and calls[before.target] == 1 and calls[node.target] == 1:
            pairs[node.target] = before.target
    return pairs


def _pairs_from_sequentials(model: nn.Module) -> dict[str, str]:
    """The same pairs read from ``nn.Sequential`` order: a batch norm right after a linear layer."""
    pairs = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (before_name, before), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(bn, BatchNorm) and plain_norm(bn) and isinstance(before, Linear):
                pairs[f"{name}.{bn_name}".lstrip(".")] = f"{name}.{before_name}".lstrip(".")
    return pairs


def batch_norm_pairs(model: nn.Module) -> dict[str, str]:
    """Each batch norm's name mapped to the convolution or linear layer it folds into (the others are left out)."""
    found = _pairs_from_graph(model)
    return found if found is not None else _pairs_from_sequentials(model)


@torch.no_grad()
def fold_batch_norm(layer: nn.Module, norm: BatchNorm) -> None:
    """Fold eval-mode ``norm`` into ``layer``'s weight and bias, in place (only ever called on a copy)."""
    if norm.running_mean is None or norm.running_var is None:
        raise CnnvizError(NO_STATISTICS)
    scale = torch.rsqrt(norm.running_var.double() + norm.eps)  # in float64: the folded logits stay within 1e-5
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = (norm.bias.double() if norm.bias is not None else 0.0) - norm.running_mean.double() * scale
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros_like(norm.running_mean), requires_grad=layer.weight.requires_grad)
    weight = layer.weight.double() * scale.view(-1, *[1] * (layer.weight.dim() - 1))
    layer.weight.copy_(weight.to(layer.weight.dtype))
    layer.bias.copy_((layer.bias.double() * scale + shift).to(layer.bias.dtype))


def canonized(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode, every batch norm folded where it can be, every operation given its rule.

    The copy computes the same logits (to float rounding); ``model`` itself is not changed, also when this raises.
    Folded batch norms become ``nn.Identity`` so every layer name of ``model`` still resolves in the copy.

    Raises:
        CnnvizError: an operation without a relevance rule, named, or a batch norm without running statistics.
    """
    pairs = batch_norm_pairs(model)
    twin = copy.deepcopy(model).eval()
    for norm_name, layer_name in pairs.items():
        fold_batch_norm(twin.get_submodule(layer_name), twin.get_submodule(norm_name))
        parent, _, child = norm_name.rpartition(".")
        setattr(twin.get_submodule(parent), child, nn.Identity())
    for module in twin.modules():
        if isinstance(module, BatchNorm) and plain_norm(module):
            if module.running_mean is None or module.running_var is None:
                raise CnnvizError(NO_STATISTICS)
            module.forward = types.MethodType(conserving.batch_norm_forward, module)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)) and plain_norm(module):
            module.forward = types.MethodType(conserving.norm_forward, module)
    follow(twin)
    return twin


@dataclass
class CanonizedCopy:
    """A model's canonized copy, the fingerprints of the weights and structure it was made from, and the lock
    that lets one caller at a time attach rules to it."""

    fingerprint: tuple[object, ...]
    network: nn.Module
    lock: threading.RLock


_COPIES: weakref.WeakKeyDictionary[nn.Module, CanonizedCopy] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def canonized_copy(model: nn.Module) -> CanonizedCopy:
    """:func:`canonized` ``model``, made once per model and again only after its weights, buffers or structure
    changed.

    Raises:
        CnnvizError: as :func:`canonized` (a refusal is not kept: the next call checks again).
    """
    fingerprint = weights_fingerprint(model), structure_fingerprint(model)
    with _COPIES_LOCK:
        kept = _COPIES.get(model)
        if kept is None or kept.fingerprint != fingerprint:
            kept = CanonizedCopy(fingerprint, canonized(model), threading.RLock())
            _COPIES[model] = kept
        return kept
