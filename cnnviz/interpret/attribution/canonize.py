"""Canonizing a network for relevance propagation, always on a copy: the user's module is never touched.

LRP rules are defined for linear layers and element-wise activations. Two things in a CNN are neither:

- **batch norm**, an affine map that LRP cannot split fairly between its input and its shift. In eval mode it
  folds exactly into the convolution (or linear layer) before it: ``w' = w * s``, ``b' = (b - mean) * s + beta``
  with ``s = gamma / sqrt(var + eps)``. Which layer comes before which is read from the traced graph
  (``torch.fx``), or from ``nn.Sequential`` order when the forward cannot be traced. A batch norm that follows
  anything else (an activation, a pooling, the input, a convolution that feeds other layers too) cannot be
  folded, and :func:`canonized` refuses in one line naming it.
- **residual additions** written as ``x + y`` in a forward: the gradient copies the relevance into both
  branches, which doubles it. The residual blocks we know (torchvision's ResNet blocks, the zoo's ``MBConv``
  and ``BasicBlock``) get zennit's ``Sum`` module on the copy, whose Norm rule splits the relevance in
  proportion to each branch's contribution. A user's own residual block keeps its plain addition: LRP still
  runs, but relevance is then not conserved through it.

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
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn
from torchvision.models import resnet as tv_resnet

from cnnviz.interpret.core.fingerprint import structure_fingerprint, weights_fingerprint
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.models import MBConv, cnns

Linear = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BatchNorm = nn.modules.batchnorm._BatchNorm


class _LeafTracer(torch.fx.Tracer):
    """Traces into containers and blocks, but keeps every convolution, linear layer and batch norm whole."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, (*Linear, BatchNorm)) or super().is_leaf_module(module, qualified_name)


def _pairs_from_graph(model: nn.Module) -> tuple[dict[str, str], dict[str, str]] | None:
    """``{batch norm: layer before it}`` and ``{batch norm: what it follows instead}``, or None if untraceable."""
    try:
        graph = _LeafTracer().trace(model)
    except Exception:  # noqa: BLE001 - any forward fx cannot follow (data-dependent control flow): fall back
        return None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs, refused = {}, {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], BatchNorm):
            continue
        before = node.args[0] if node.args else None
        if not isinstance(before, torch.fx.Node) or before.op != "call_module" \
                or not isinstance(modules[before.target], Linear):
            refused[node.target] = f"{getattr(before, 'target', before)}, not a convolution or linear layer"
        elif len(before.users) != 1 or calls[before.target] != 1 or calls[node.target] != 1:
            refused[node.target] = f"{before.target}, whose output also goes elsewhere (or which runs twice)"
        else:
            pairs[node.target] = before.target
    return pairs, refused


def _pairs_from_sequentials(model: nn.Module) -> tuple[dict[str, str], dict[str, str]]:
    """The same pairs read from ``nn.Sequential`` order: a batch norm right after a linear layer."""
    pairs, refused = {}, {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (before_name, before), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(bn, BatchNorm) and isinstance(before, Linear):
                pairs[f"{name}.{bn_name}".lstrip(".")] = f"{name}.{before_name}".lstrip(".")
    for name, module in model.named_modules():
        if isinstance(module, BatchNorm) and name not in pairs:
            refused[name] = "no convolution or linear layer right before it in an nn.Sequential (and the forward " \
                            "could not be traced)"
    return pairs, refused


def batch_norm_pairs(model: nn.Module) -> dict[str, str]:
    """Each batch norm's name mapped to the convolution or linear layer it folds into.

    Raises:
        CnnvizError: naming the first batch norm that cannot be folded, and why.
    """
    found = _pairs_from_graph(model) or _pairs_from_sequentials(model)
    pairs, refused = found
    for name, module in model.named_modules():
        if isinstance(module, BatchNorm) and name not in pairs and name not in refused:
            refused[name] = "it never runs in the forward pass"
    if refused:
        name, why = next(iter(refused.items()))
        raise CnnvizError(f"cannot canonize this model for LRP: batch norm {name!r} follows {why}, so it cannot be "
                          "folded into a layer; use a gradient method (or concept_relevance backend='gradient')")
    return pairs


@torch.no_grad()
def fold_batch_norm(layer: nn.Module, norm: BatchNorm) -> None:
    """Fold eval-mode ``norm`` into ``layer``'s weight and bias, in place (only ever called on a copy)."""
    if norm.running_mean is None or norm.running_var is None:
        raise CnnvizError("cannot canonize this model for LRP: a batch norm keeps no running statistics "
                          "(track_running_stats=False), so it is not a fixed affine map to fold")
    scale = torch.rsqrt(norm.running_var.double() + norm.eps)  # in float64: the folded logits stay within 1e-5
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = (norm.bias.double() if norm.bias is not None else 0.0) - norm.running_mean.double() * scale
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros_like(norm.running_mean), requires_grad=layer.weight.requires_grad)
    weight = layer.weight.double() * scale.view(-1, *[1] * (layer.weight.dim() - 1))
    layer.weight.copy_(weight.to(layer.weight.dtype))
    layer.bias.copy_((layer.bias.double() * scale + shift).to(layer.bias.dtype))


def _stacked_sum(self: nn.Module, skip: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``skip + branch`` through the block's ``Sum`` module, so LRP's Norm rule splits the relevance."""
    return self.relevance_sum(torch.stack([skip, branch], dim=-1))


def _mbconv_forward(self: MBConv, x: torch.Tensor) -> torch.Tensor:
    out = self.project(self.depthwise(self.expand(x)))
    return _stacked_sum(self, x, self.drop_path(out)) if self.use_skip else out


def _zoo_basic_forward(self: cnns.BasicBlock, x: torch.Tensor) -> torch.Tensor:
    out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
    return self.act2(_stacked_sum(self, self.shortcut(x), out))


def _tv_basic_forward(self: tv_resnet.BasicBlock, x: torch.Tensor) -> torch.Tensor:
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    skip = x if self.downsample is None else self.downsample(x)
    return self.relu(_stacked_sum(self, skip, out))


def _tv_bottleneck_forward(self: tv_resnet.Bottleneck, x: torch.Tensor) -> torch.Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
    skip = x if self.downsample is None else self.downsample(x)
    return self.relu(_stacked_sum(self, skip, out))


RESIDUAL_FORWARDS: dict[type, Callable[..., torch.Tensor]] = {
    MBConv: _mbconv_forward, cnns.BasicBlock: _zoo_basic_forward,
    tv_resnet.BasicBlock: _tv_basic_forward, tv_resnet.Bottleneck: _tv_bottleneck_forward,
}


def canonized(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every batch norm folded and known residual sums made modules.

    The copy computes the same logits (to float rounding); ``model`` itself is not changed, also when this raises.
    Batch norms become ``nn.Identity`` so every layer name of ``model`` still resolves in the copy.

    Raises:
        CnnvizError: a batch norm that cannot be folded, named.
    """
    pairs = batch_norm_pairs(model)
    twin = copy.deepcopy(model).eval()
    for norm_name, layer_name in pairs.items():
        fold_batch_norm(twin.get_submodule(layer_name), twin.get_submodule(norm_name))
        parent, _, child = norm_name.rpartition(".")
        setattr(twin.get_submodule(parent), child, nn.Identity())
    from zennit.layer import Sum

    for module in twin.modules():
        forward = RESIDUAL_FORWARDS.get(type(module))
        if forward is not None:
            module.relevance_sum = Sum()
            module.forward = types.MethodType(forward, module)
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
