"""Fold the engine's traced graph for inference: fewer passes over memory, the same function.

Under the engine, once a changed box covers a deep map, every layer runs in full
on every row, as the full pass does; there the memory-bound steps between the
convolutions cost as much as the convolutions (measured on efficientnet_lite0:
batch norm 17 %, ReLU6 14 %, 'SAME' zero padding 13 % of the engine's time).
:func:`fold` rewrites the graph (never the model) so that:

- an eval-mode batch norm right after a convolution becomes part of that
  convolution's weights and bias (new tensors held by the graph);
- a 'SAME' padding right before a convolution becomes part of it
  (:func:`same_conv2d`: the convolution's own zero padding where even, and
  no padded copy of the map where uneven);
- a ReLU / ReLU6 right after a convolution runs in place on its fresh output.

Example:
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    >>> graph = fold(torch.fx.symbolic_trace(net))
    >>> [n.op for n in graph.graph.nodes]
    ['placeholder', 'get_attr', 'get_attr', 'call_function', 'call_function', 'output']
"""

from __future__ import annotations

from operator import attrgetter

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from cnnviz.zoo.core import pad_same, same_padding

CONV_FIELDS = ("stride", "padding", "dilation", "groups")


def padded_conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int | tuple[int, int],
                  padding: tuple[int, int, int, int], dilation: int | tuple[int, int], groups: int) -> torch.Tensor:
    """``F.conv2d`` of ``input`` zero-padded by ``(top, bottom, left, right)``, sides that may differ.

    It pads both sides alike, by ``before`` plus whole strides, and cuts off the outputs that padding adds, so the
    map is never copied; each kept output reads exactly the pixels it reads on the unevenly padded map.
    """
    stride, dilation = _pair(stride), _pair(dilation)
    pads, starts, counts = [], [], []
    for axis, (before, after) in enumerate((padding[:2], padding[2:])):
        s, reach = stride[axis], dilation[axis] * (weight.shape[2 + axis] - 1)
        extra = -(-max(after - before, 0) // s)  # whole strides of padding added before: outputs to drop
        pads.append(before + extra * s)
        starts.append(extra)
        counts.append((input.shape[2 + axis] + before + after - reach - 1) // s + 1)
    output = F.conv2d(input, weight, bias, stride, pads, dilation, groups)
    return output[:, :, starts[0]:starts[0] + counts[0], starts[1]:starts[1] + counts[1]]


@torch.fx.wrap
def same_conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """``F.conv2d`` of ``input`` zero-padded by TensorFlow's 'SAME' rule (:func:`~zoo.efficientnet_lite.pad_same`)
    for this convolution, without a padded copy of the map."""
    (top, bottom), (left, right) = same_pads(input.shape[-2:], weight.shape[-2:], stride, dilation)
    if top == bottom and left == right:
        return F.conv2d(input, weight, bias, stride, (top, left), dilation, groups)
    return padded_conv2d(input, weight, bias, stride, (top, bottom, left, right), dilation, groups)


def same_pads(sides: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, int],
              dilation: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The 'SAME' padding ``((top, bottom), (left, right))`` of maps of ``sides`` (height, width)."""
    top_bottom, left_right = (same_padding(sides[i], kernel[i], stride[i], dilation[i]) for i in (0, 1))
    return top_bottom, left_right


def _conv_parts(graph: torch.fx.GraphModule, node: torch.fx.Node) -> dict | None:
    """A convolution node's input, weight, bias and geometry, or None if it is not a plain 2-d convolution."""
    if node.op == "call_module":
        module = graph.get_submodule(node.target)
        if type(module) is not nn.Conv2d or module.padding_mode != "zeros" or isinstance(module.padding, str) \
                or node.kwargs or len(node.args) != 1:
            return None
        return {"input": node.args[0], "weight": module.weight, "bias": module.bias,
                **{field: getattr(module, field) for field in CONV_FIELDS}}
    if node.op == "call_function" and node.target in (F.conv2d, torch.conv2d) and not node.kwargs:
        args = list(node.args) + [None, 1, 0, 1, 1][len(node.args) - 2:]
        if not all(isinstance(a, torch.fx.Node) and a.op == "get_attr" for a in args[1:2]) or \
                not (args[2] is None or isinstance(args[2], torch.fx.Node) and args[2].op == "get_attr") or \
                isinstance(args[4], str):
            return None
        return {"input": args[0], "weight": attrgetter(args[1].target)(graph),
                "bias": None if args[2] is None else attrgetter(args[2].target)(graph),
                **dict(zip(CONV_FIELDS, args[3:7]))}
    return None


def _replace_conv(graph: torch.fx.GraphModule, old: torch.fx.Node, parts: dict, index: int) -> torch.fx.Node:
    """A functional convolution node from ``parts`` (weight and bias held by the graph), in ``old``'s place."""
    names = []
    for kind in ("weight", "bias"):
        name = f"_folded_{index}_{kind}"
        graph.register_buffer(name, parts[kind].detach().clone() if parts[kind] is not None else None)
        names.append(name)
    with graph.graph.inserting_before(old):
        weight, bias = (graph.graph.get_attr(name) if parts[kind] is not None else None
                        for name, kind in zip(names, ("weight", "bias")))
        if parts["padding"] == "same":
            arguments = (parts["input"], weight, bias, parts["stride"], parts["dilation"], parts["groups"])
            new = graph.graph.call_function(same_conv2d, arguments)
        else:
            new = graph.graph.call_function(F.conv2d, (parts["input"], weight, bias,
                                                       *(parts[field] for field in CONV_FIELDS)))
    stack = list(old.meta.get("nn_module_stack", {}).values())  # the layer it stands for, for reports
    new.meta["source"] = str(old.target) if old.op == "call_module" else stack[-1][0] if stack else old.name
    old.replace_all_uses_with(new)
    graph.graph.erase_node(old)
    return new


def _fold_batch_norm(parts: dict, norm: nn.BatchNorm2d) -> dict:
    scale = norm.weight.detach() if norm.affine else torch.ones_like(norm.running_var)
    scale = scale / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias.detach() if norm.affine else torch.zeros_like(norm.running_mean)
    bias = parts["bias"].detach() if parts["bias"] is not None else torch.zeros_like(norm.running_mean)
    return {**parts, "weight": parts["weight"].detach() * scale.view(-1, 1, 1, 1),
            "bias": (bias - norm.running_mean) * scale + shift}


def fold(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``graph`` with batch norms and 'SAME' paddings folded into their convolutions and ReLUs in place.

    The model's own modules and tensors are left untouched.
    """
    index = 0
    for node in list(graph.graph.nodes):
        parts = _conv_parts(graph, node)
        if parts is None:
            continue
        source = parts["input"]
        if isinstance(source, torch.fx.Node) and source.op == "call_function" and source.target is pad_same \
                and len(source.users) == 1 and parts["padding"] in (0, (0, 0)) and len(source.args) == 4 \
                and _pair(source.args[1]) == tuple(parts["weight"].shape[-2:]) \
                and _pair(source.args[2]) == _pair(parts["stride"]) \
                and _pair(source.args[3]) == _pair(parts["dilation"]):
            parts = {**parts, "input": source.args[0], "padding": "same",
                     "stride": _pair(parts["stride"]), "dilation": _pair(parts["dilation"])}
        users = list(node.users)
        folded = False
        if len(users) == 1 and users[0].op == "call_module":
            norm = graph.get_submodule(users[0].target)
            if type(norm) is nn.BatchNorm2d and not norm.training and norm.track_running_stats:
                parts, folded = _fold_batch_norm(parts, norm), True
        if not folded and parts["input"] is node.args[0]:
            continue
        new = _replace_conv(graph, node, parts, index)
        index += 1
        if folded:
            norm_node = users[0]
            norm_node.replace_all_uses_with(new)
            graph.graph.erase_node(norm_node)
        if source is not parts["input"] and not source.users:
            graph.graph.erase_node(source)
        _activate_in_place(graph, new)
    for node in list(graph.graph.nodes):
        if node.op == "get_attr" and not node.users:  # the replaced convolutions' own weights
            graph.graph.erase_node(node)
    graph.recompile()
    return graph


def _activate_in_place(graph: torch.fx.GraphModule, conv: torch.fx.Node) -> None:
    """A ReLU / ReLU6 module that alone reads ``conv``'s output runs in place on it."""
    users = list(conv.users)
    if len(users) != 1 or users[0].op != "call_module":
        return
    module = graph.get_submodule(users[0].target)
    function = {nn.ReLU: F.relu, nn.ReLU6: F.relu6}.get(type(module))
    if function is None:
        return
    with graph.graph.inserting_before(users[0]):
        new = graph.graph.call_function(function, (conv,), {"inplace": True})
    users[0].replace_all_uses_with(new)
    graph.graph.erase_node(users[0])
