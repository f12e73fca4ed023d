"""The network up to one layer as a module of its own, so that layer-only passes can be compiled.

The atlas and feature maps need a layer's output, not the logits. Eagerly,
:func:`zoo.hooks.run_until` stops the forward pass at the layer with a
hook; a compiler cannot follow that. :func:`layer_prefix` instead traces the
network with ``torch.fx`` (the layer kept whole, as a leaf), ends the graph at
the layer's first call and drops everything after it, which gives a plain
module that ``torch.compile`` takes. Networks ``torch.fx`` cannot trace (data-
dependent control flow on tensor values) get None, and their
callers stay on the eager path.

Example:
    >>> import torchvision
    >>> handle = as_handle(torchvision.models.resnet18().eval())
    >>> prefix = layer_prefix(handle, "layer2")
    >>> x = torch.rand(2, 3, 64, 64)
    >>> torch.allclose(prefix(x), layer_output(handle, "layer2", x), atol=1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from cnnviz.interpret.core.activations import layer_output
from cnnviz.zoo.handle import ForwardRunner, ModelHandle, PRECISIONS, as_handle, layer_name


class _KeepWhole(torch.fx.Tracer):
    """fx's tracer, with the wanted layer as a leaf, so its call is one node however it is built."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is self.layer or super().is_leaf_module(m, module_qualified_name)


class LayerPrefix(nn.Module):
    """Images in [0, 1] -> the handle's normalization -> the network up to the layer's output.

    Follows the handle's channels-last and precision settings, like the handle's own forward.
    """

    def __init__(self, handle: ModelHandle, graph: torch.fx.GraphModule) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer("mean", handle.mean.clone(), persistent=False)
        self.register_buffer("std", handle.std.clone(), persistent=False)
        self.channels_last = handle.channels_last
        self.precision = handle.precision

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        normalized = (images - self.mean) / self.std
        if self.channels_last and normalized.device.type == "cpu":
            normalized = normalized.contiguous(memory_format=torch.channels_last)
        if self.precision == "fp32":
            return self.graph(normalized)
        with torch.autocast(normalized.device.type, dtype=PRECISIONS[self.precision]):
            return self.graph(normalized).float()


def layer_prefix(model: nn.Module, layer: str | nn.Module) -> LayerPrefix | None:
    """The network of ``model`` up to ``layer``'s first output, or None where ``torch.fx`` cannot trace it.

    The prefix shares the network's parameters (no copy); it never runs the layers after ``layer``.
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    name = layer_name(handle.model, module)
    try:
        graph = _KeepWhole(module).trace(handle.model)
    except Exception:  # noqa: BLE001 - any tracing failure means: no prefix, use the eager path
        return None
    node = next((n for n in graph.nodes if n.op == "call_module" and n.target == name), None)
    if node is None:  # called under another name, or only inside a traced function
        return None
    output = next(n for n in graph.nodes if n.op == "output")
    graph.erase_node(output)
    graph.output(node)
    prefix = torch.fx.GraphModule(handle.model, graph)
    prefix.graph.eliminate_dead_code()  # the layers after ``layer`` are gone
    prefix.delete_all_unused_submodules()
    prefix.recompile()
    return LayerPrefix(handle, prefix)


def layer_runner(handle: ModelHandle, layer: str | nn.Module, rows: int, batch_size: int) -> ForwardRunner:
    """A :class:`~zoo.compiled.ForwardRunner` of ``layer``'s output for a job of ``rows`` rows: compiled over
    the layer's prefix when it pays (``handle.compile_mode``), else the eager early-stopping pass."""
    module = handle.layer(layer)
    prefix = layer_prefix(handle, module) if handle.compile_mode != "off" else None
    part = f"layer {layer_name(handle.model, module)} {handle.precision}"
    return ForwardRunner(handle, rows, batch_size, part=part, eager=lambda x: layer_output(handle, module, x),
                         fast=prefix)
