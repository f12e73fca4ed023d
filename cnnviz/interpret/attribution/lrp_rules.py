"""LRP rules of our own, where zennit's do work that cannot change the answer.

zennit's z+ rule runs every layer twice in its backward pass: the positive weights on the positive part of the
input and the negative weights (bias zeroed) on the negative part. After a ReLU or ReLU6 the input has no negative
part, so the second run adds exactly zero to the layer's output and to the relevance; :class:`NonNegativeZPlus`
skips it for such inputs and otherwise is zennit's rule, so its relevance is the same to the bit. In
EfficientNet-Lite two of the three convolutions of each block read a ReLU6 output.

Example:
    >>> import torch
    >>> from zennit.attribution import Gradient
    >>> from zennit.composites import EpsilonPlusFlat
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 3),
    ...                           torch.nn.Flatten(), torch.nn.Linear(8, 2))
    >>> x, pick = torch.randn(1, 1, 6, 6), lambda out: out * torch.tensor([[1.0, 0.0]])
    >>> def relevance(rules):
    ...     with Gradient(net, EpsilonPlusFlat(layer_map=rules)) as attributor:
    ...         return attributor(x, pick)[1]
    >>> torch.equal(relevance([(torch.nn.Conv2d, NonNegativeZPlus())]), relevance([]))
    True
"""

from __future__ import annotations

from typing import Any

import torch
from zennit.core import ParamMod, Stabilizer
from zennit.rules import ZPlus


class NonNegativeZPlus(ZPlus):
    """zennit's z+ rule that runs only the positive half when the layer's input has no negative entry."""

    def __init__(self, stabilizer: Any = 1e-6, zero_params: Any = None) -> None:
        super().__init__(stabilizer=stabilizer, zero_params=zero_params)
        self.rule_options = {"stabilizer": stabilizer, "zero_params": zero_params}
        self.stabilized = Stabilizer.ensure(stabilizer)

    def backward(self, module: torch.nn.Module, grad_input: Any, grad_output: Any) -> Any:
        stored = self.stored_tensors["input"][0]
        if bool((stored < 0).any()):
            return super().backward(module, grad_input, grad_output)
        inputs = stored.clone().requires_grad_()
        with ParamMod.ensure(self.param_modifiers[0])(module) as positive, torch.autograd.enable_grad():
            outputs = positive.forward(inputs)
        (gradient,) = torch.autograd.grad(outputs, inputs, grad_outputs=grad_output[0] / self.stabilized(outputs),
                                          create_graph=grad_output[0].requires_grad)
        relevance = inputs * gradient
        return tuple(relevance if original.shape == relevance.shape else None for original in grad_input)

    def copy(self) -> NonNegativeZPlus:
        """A fresh hook with the same options (the composite gives each layer its own)."""
        return NonNegativeZPlus(**self.rule_options)
