"""Layer tables: name, type, output shape and parameter count by the textbook rules."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.zoo.core import preserve, record
from cnnviz.zoo.handle import ModelHandle, as_handle


@dataclass(frozen=True)
class LayerRow:
    """One module of a network.

    Attributes:
        name: dotted name (``""`` is the whole network).
        type: class name.
        depth: nesting level, for indentation.
        output_shape: shape of its output at the model's input size (per call).
        calls: how many times it ran in one forward pass (> 1: a shared module).
        params: real parameter count (own and children's).
        textbook: the count by the textbook rules (see :func:`textbook_params`).
        rule: which rule gave ``textbook`` (for leaves).
    """

    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    calls: int
    params: int
    textbook: int
    rule: str


def textbook_params(module: nn.Module) -> tuple[int, str]:
    """Parameters of one leaf module by the formulas taught in CNN courses.

    conv: (F·F·C_in/groups + 1)·K (the +1 only with a bias); dense:
    (in + 1)·out; batch norm: 2·C (scale and shift; running statistics are
    buffers, not parameters); PReLU: one slope per channel.
    """
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if isinstance(module, nn.modules.conv._ConvNd):
        area = 1
        for k in module.kernel_size:
            area *= k
        bias = 1 if module.bias is not None else 0
        per_filter = area * module.in_channels // module.groups
        return (per_filter + bias) * module.out_channels, "conv (F*F*C_in/g + b)*K"
    if isinstance(module, nn.Linear):
        return (module.in_features + (1 if module.bias is not None else 0)) * module.out_features, "dense (in + b)*out"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return (2 * module.num_features if module.affine else 0), "batch norm 2*C"
    if isinstance(module, nn.PReLU):
        return module.num_parameters, "PReLU slopes"
    if own == 0:
        return 0, "no parameters"
    return own, "counted (no textbook rule)"


def layer_table(model: nn.Module, input_size: int | None = None) -> list[LayerRow]:
    """Every module of ``model`` with its output shape at the input size and parameter counts.

    Runs one forward pass on a zero image, in eval mode, without gradients.

    Example:
        >>> import torchvision
        >>> rows = layer_table(torchvision.models.alexnet())
        >>> [(r.name, r.output_shape) for r in rows if r.name == "features.0"]
        [('features.0', (1, 64, 55, 55))]
    """
    handle: ModelHandle = as_handle(model)
    size = input_size or handle.input_size
    net = handle.model
    named = [(name, module) for name, module in net.named_modules() if name]
    with preserve(handle), torch.no_grad(), record(dict(named)) as recordings:
        handle(torch.zeros(1, handle.in_channels, size, size, device=handle.device))
    rows = []
    for name, module in named:
        outputs = recordings[name].outputs
        rows.append(LayerRow(
            name=name, type=type(module).__name__, depth=name.count("."),
            output_shape=tuple(outputs[0].shape) if outputs else None, calls=len(outputs),
            params=sum(p.numel() for p in module.parameters()), textbook=textbook_total(module),
            rule="" if _has_children(module) else textbook_params(module)[1],
        ))
    return rows


def _has_children(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def textbook_total(module: nn.Module) -> int:
    """Parameters of ``module`` and its children, summed from the textbook rules of the leaves.

    A container's own parameters (rare: e.g. a class token) are counted as they are.
    """
    if not _has_children(module):
        return textbook_params(module)[0]
    own = sum(p.numel() for p in module.parameters(recurse=False))
    return own + sum(textbook_total(child) for child in module.children())


def summary_lines(model: nn.Module, input_size: int | None = None) -> list[str]:
    """A Keras-style summary: each leaf layer's output shape and parameters by the textbook rules.

    The last line compares the textbook total with the real parameter count.

    Example:
        >>> from cnnviz.zoo.models.cnns import build_cnn
        >>> summary_lines(build_cnn("lenet5"), 28)[-1]
        'total: 61,706 parameters by the textbook rules, 61,706 counted: equal'
    """
    handle = as_handle(model)
    rows = [r for r in layer_table(handle, input_size) if r.rule]  # containers have no rule: leaves only
    width = max(len(r.name) for r in rows)
    kinds = max(len(r.type) for r in rows)
    lines = [f"{'layer':<{width}}  {'type':<{kinds}}  {'output shape':<14}  {'params':>9}  rule"]
    for r in rows:
        shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
        lines.append(f"{r.name:<{width}}  {r.type:<{kinds}}  {shape:<14}  {r.textbook:>9,}  {r.rule}")
    real, textbook = sum(p.numel() for p in handle.model.parameters()), textbook_total(handle.model)
    lines.append(f"total: {textbook:,} parameters by the textbook rules, {real:,} counted: "
                 f"{'equal' if real == textbook else 'DIFFERENT'}")
    return lines
