"""Following the graph for LRP: every operation of a canonized copy's forward gets a relevance rule or a refusal.

Each module whose forward is Python of its own (a block, a container, the model) is traced with ``torch.fx``, its
submodules kept whole, so every layer name still resolves and hooks on a layer still fire. Then each operation
through which relevance flows is checked:

- a submodule call: a layer zennit's composites know (convolution, linear, activation, pooling, dropout, identity,
  flatten, channel shuffle), a batch norm (folded before, or made an affine rule), a LayerNorm or GroupNorm
  (:mod:`~interpret.attribution.conserving`), or a module that is itself traced;
- a tensor + tensor add: :func:`~interpret.attribution.conserving.epsilon`, split in proportion to each branch;
- a product of two tensors where one is a gate (through a sigmoid or hard sigmoid): the gate is a constant;
- a product, sum, difference or quotient with a parameter or constant, and element-wise activations: relevance
  passes through unchanged (layer scale is linear);
- means, average pooling and batch norm functionals: :func:`~interpret.attribution.conserving.epsilon`; LayerNorm
  and GroupNorm functionals: their statistics count as constants;
- concatenations, reshapes, permutations, channel shuffles, splits, indexing, max pooling: the gradient already
  routes relevance (by channel for a concatenation), so they are left as they are.

Anything else through which relevance would flow refuses in one line naming the operation, the node and the module.

Example:
    >>> import torch
    >>> class Block(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    ...     def forward(self, x):
    ...         return torch.relu(x + self.conv(x))
    >>> block = Block()
    >>> follow(block)
    >>> [n.target.__name__ for n in block.forward.__self__.graph.nodes if n.op == "call_function"]
    ['tensor_sum', 'relu_rule']
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.fx
from torch import nn
from zennit import types as zennit_types

from cnnviz.interpret.attribution import conserving
from cnnviz.zoo.core import CnnvizError

SUMS = {"add", "iadd", "__add__", "__radd__"}
DIFFERENCES = {"sub", "isub", "__sub__"}
PRODUCTS = {"mul", "imul", "__mul__", "__rmul__"}
QUOTIENTS = {"truediv", "div", "itruediv", "__truediv__"}
ACTIVATIONS = {"relu", "relu6", "hardtanh", "leaky_relu", "elu", "gelu", "silu", "hardswish", "mish", "sigmoid",
               "hardsigmoid", "tanh", "softplus"}
LINEAR_MAPS = {"batch_norm", "mean", "sum", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
               "adaptive_avg_pool2d", "adaptive_avg_pool3d"}
NORMS: dict[str, Callable[..., torch.Tensor]] = {"layer_norm": conserving.layer_norm,
                                                  "group_norm": conserving.group_norm}
ROUTES = {"cat", "concat", "stack", "view", "reshape", "flatten", "unflatten", "permute", "transpose", "contiguous",
          "unsqueeze", "squeeze", "expand", "expand_as", "chunk", "split", "getitem", "narrow", "roll", "clone", "to",
          "type", "float", "channel_shuffle", "dropout", "dropout2d", "pad", "max_pool1d", "max_pool2d",
          "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "amax",
          "pixel_shuffle", "pixel_unshuffle", "getattr", "size", "dim", "identity", "stochastic_depth"}
METADATA = {"shape", "dtype", "device", "ndim"}  # attributes, and calls below, that carry no relevance
CHECKS = {"size", "dim", "eq", "ne", "lt", "le", "gt", "ge", "is_", "is_not", "_assert", "_assert_is_none"}
GATES = {"sigmoid", "hardsigmoid"}
GATE_MODULES = (nn.Sigmoid, nn.Hardsigmoid)
LEAVES = (zennit_types.Convolution, zennit_types.Linear, zennit_types.AvgPool, zennit_types.MaxPool,
          nn.Identity, nn.modules.dropout._DropoutNd,
          nn.Flatten, nn.Unflatten, nn.ChannelShuffle, nn.ZeroPad2d, nn.ConstantPad2d)


def plain_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a batch norm, ``nn.LayerNorm`` or ``nn.GroupNorm`` with their own forward (a subclass
    that does more, as torchvision's ``LayerNorm2d`` or timm's ``BatchNormAct2d``, is traced instead)."""
    return type(module).forward in (nn.modules.batchnorm._BatchNorm.forward, nn.LayerNorm.forward,
                                    nn.GroupNorm.forward)


def tensor_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b``, splitting relevance in proportion to each summand (:func:`conserving.epsilon`)."""
    return conserving.epsilon(operator.add, a, b)


class _KeepSubmodules(torch.fx.Tracer):
    """Traces one module's own forward; every submodule it calls stays a single node."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return True


def _plain_name(node: torch.fx.Node) -> str:
    """The operation's name without the in-place mark: ``add_``, ``iadd`` -> ``add`` (kept when given a rule)."""
    if "relevance_rule_of" in node.meta:
        return node.meta["relevance_rule_of"]
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    name = name.lstrip("_").rstrip("_") if name.startswith("__") else name.rstrip("_")
    return name[1:] if name in {"iadd", "isub", "imul", "itruediv"} else name


def _out_of_place(node: torch.fx.Node) -> Callable[..., Any]:
    """The node's operation as a function of its arguments, never writing into them."""
    name = _plain_name(node)
    if node.op == "call_method":
        return lambda x, *args, inplace=False, **kwargs: getattr(x, name)(*args, **kwargs)
    target = getattr(operator, name) if getattr(node.target, "__module__", "") in ("_operator", "operator") \
        else node.target
    if name in ACTIVATIONS:
        return lambda *args, inplace=False, **kwargs: target(*args, **kwargs)
    return target


def _passing(op: Callable[..., Any], index: int) -> Callable[..., Any]:
    """``op`` whose relevance goes unchanged to its argument ``index``."""
    return lambda *args, **kwargs: conserving.passing(lambda *a: op(*a, **kwargs), index, *args)


def _gate(node: Any, module: nn.Module) -> bool:
    """Whether ``node`` is a gate: a sigmoid or hard sigmoid, seen through reshapes."""
    while isinstance(node, torch.fx.Node):
        if node.op == "call_module":  # torch's, or a library's own class of that name (timm's HardSigmoid)
            gate = module.get_submodule(node.target)
            return isinstance(gate, GATE_MODULES) or type(gate).__name__.lower() in GATES
        if node.op in ("call_function", "call_method"):
            name = _plain_name(node)
            if name in GATES:
                return True
            if name in ROUTES and node.args:
                node = node.args[0]
                continue
        return False
    return False


def _rule(node: torch.fx.Node, signal: list[bool], module: nn.Module, where: str) -> Callable[..., Any] | None:
    """The function that replaces ``node`` (None: keep it); ``signal[i]``: whether ``node.args[i]`` carries
    relevance."""
    name = _plain_name(node)
    carried = [i for i, s in enumerate(signal) if s]
    if name in ROUTES:
        return None
    op = _out_of_place(node)
    if name in ACTIVATIONS and carried == [0]:
        return _passing(op, 0)
    if name in SUMS and carried == [0, 1] and len(node.args) == 2 and not node.kwargs:
        return tensor_sum
    if name in SUMS | DIFFERENCES | PRODUCTS and len(carried) == 1 or name in QUOTIENTS and carried == [0]:
        return _passing(op, carried[0])
    if name in PRODUCTS and carried == [0, 1]:
        gates = [_gate(arg, module) for arg in node.args[:2]]
        if gates.count(True) == 1:
            return _passing(op, gates.index(False))
    if name in LINEAR_MAPS and carried == [0]:
        return lambda x, *args, **kwargs: conserving.epsilon(lambda x: op(x, *args, **kwargs), x)
    if name in NORMS and carried == [0]:
        return NORMS[name]
    raise CnnvizError(f"cannot propagate relevance through {name} at node {node.name!r} in {where}: no LRP rule for "
                      "it (use a gradient method, or concept_relevance backend='gradient')")


def _carries(arg: Any, signals: set[torch.fx.Node]) -> bool:
    found: list[bool] = []
    torch.fx.node.map_arg(arg, lambda n: found.append(n in signals) or n)
    return any(found)


def _rewrite(module: nn.Module, graph: torch.fx.Graph, where: str) -> bool:
    """Gives each node of ``graph`` its rule, in place; whether any node changed."""
    signals: set[torch.fx.Node] = set()
    changed = False
    for node in graph.nodes:
        if node.op == "placeholder":
            signals.add(node)
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        signal = [_carries(arg, signals) for arg in node.args] + [_carries(node.kwargs, signals)]
        if not any(signal) or _plain_name(node) in CHECKS or \
                node.op == "call_function" and node.target is getattr and node.args[1] in METADATA:
            continue
        signals.add(node)
        if node.op == "call_module":
            _check_leaf(module, node.target, where)
            continue
        rule = _rule(node, signal[:-1], module, where)
        if rule is not None:
            if rule.__name__ == "<lambda>":  # a name for the traced code
                rule.__name__ = f"{_plain_name(node)}_rule"
            node.meta["relevance_rule_of"] = _plain_name(node)
            node.op, node.target = "call_function", rule
            changed = True
    return changed


def _followed(module: nn.Module) -> bool:
    """Whether ``module``'s forward is traced (its own Python, or a container), rather than a layer with a rule
    (a subclass of a layer zennit knows, such as a convolution that pads first, keeps the layer's rule)."""
    if isinstance(module, LEAVES) or isinstance(module, zennit_types.Activation) or plain_norm(module):
        return False
    return bool(list(module.children())) or not type(module).__module__.startswith(("torch.nn", "zennit"))


def _check_leaf(parent: nn.Module, target: str, where: str) -> None:
    child = parent.get_submodule(target)
    if _followed(child) or isinstance(child, LEAVES) or plain_norm(child) or \
            isinstance(child, zennit_types.Activation) and not isinstance(child, nn.MultiheadAttention):
        return
    raise CnnvizError(f"cannot propagate relevance through {type(child).__name__} {target!r} in {where}: no LRP "
                      "rule for it (use a gradient method, or concept_relevance backend='gradient')")


def _trace(module: nn.Module) -> torch.fx.Graph:
    """``module``'s forward as a graph; where a flag argument steers it (timm's ``pre_logits=False``), with the
    flags at their defaults."""
    try:
        return _KeepSubmodules().trace(module)
    except torch.fx.proxy.TraceError:
        flags = {p.name: p.default for p in inspect.signature(module.forward).parameters.values()
                 if isinstance(p.default, (bool, int, float, str, type(None)))}
        return _KeepSubmodules().trace(module, concrete_args=flags)


def follow(model: nn.Module) -> None:
    """Gives every operation of ``model``'s forward (and its submodules') its relevance rule, in place (on a copy).

    Raises:
        CnnvizError: naming the first operation or module without a rule, or a forward that cannot be traced.
    """
    for name, module in model.named_modules():
        if not _followed(module) or isinstance(module, (nn.ModuleList, nn.ModuleDict)) and \
                type(module).forward is nn.Module.forward:
            continue
        where = f"module {name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"
        if type(module).forward is nn.Sequential.forward:  # a chain of its children: nothing between them to trace
            for child in dict(module.named_children()):
                _check_leaf(module, child, where)
            continue
        try:
            graph = _trace(module)
        except Exception as error:  # noqa: BLE001 - whatever fx cannot follow: refused, naming the module
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CnnvizError(f"cannot canonize this model for LRP: torch.fx cannot trace the forward of {where} "
                              f"({first}); use a gradient method") from None
        if _rewrite(module, graph, where):
            traced = torch.fx.GraphModule(module, graph, class_name=type(module).__name__)
            module.forward = traced.forward
