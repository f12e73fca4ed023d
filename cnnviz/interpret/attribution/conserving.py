"""Relevance rules for the operations between layers, as autograd functions of the canonized copy.

zennit's rules attach to modules (convolutions, dense layers, activations, pooling). What a forward computes between
them (``x + y``, ``x * gate``, ``x.mean((2, 3))``, ``F.layer_norm``) would otherwise pass the *gradient*, which is
not relevance: a residual add gives the full relevance to both branches, a layer scale multiplies it by its weights.
The canonizer (:mod:`interpret.attribution.relevance_graph`) routes each such operation through one of two rules,
which hold under every composite because they live in the copy's backward pass:

- :func:`epsilon`: LRP-0 through a map that is linear in its inputs, ``R_i = x_i * d<f(x), R / f(x)>/dx_i``: a
  tensor sum splits relevance in proportion to each branch's contribution (zennit's ``Norm`` rule on its ``Sum``),
  a mean splits it in proportion to each input's share, an affine map (a batch norm no layer can absorb) keeps
  what its shift does not take. The denominator is stabilized as zennit's (``z + 1e-6 * sign(z)``).
- :func:`passing`: the relevance goes unchanged to one input, nothing to the others: element-wise activations,
  multiplications by parameters or constants (layer scale), and a multiplication by a gate computed from the same
  input (squeeze-excitation, ``x * sigmoid(...)``), where the gate counts as a constant (the "gate as constant"
  convention of LRP for gated units, Arras et al. 2017).

LayerNorm and GroupNorm treat their normalizing statistics as constants (Ali et al., ICML 2022, "XAI for
Transformers: Better Explanations through Conservative Propagation"): the centering and scaling that remain are
linear, and :func:`epsilon` conserves through them.

Example:
    >>> import torch
    >>> a, b = torch.tensor([1.0, 3.0], requires_grad=True), torch.tensor([3.0, 1.0], requires_grad=True)
    >>> out = epsilon(torch.add, a, b)
    >>> ra, rb = torch.autograd.grad(out, (a, b), torch.tensor([8.0, 4.0]))
    >>> [round(v, 3) for v in (ra + rb).tolist()], [round(v, 3) for v in ra.tolist()]
    ([8.0, 4.0], [2.0, 3.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def stabilized(z: torch.Tensor, epsilon: float = 1e-6) -> torch.Tensor:
    """``z`` moved away from zero by ``epsilon`` in its own direction (zero counts as positive)."""
    return z + (z.sign() + (z == 0)) * epsilon


class _Epsilon(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        ctx.fn = fn
        ctx.save_for_backward(*inputs)
        return fn(*inputs)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs = [x.detach().requires_grad_() for x in ctx.saved_tensors]
        with torch.enable_grad():
            out = ctx.fn(*inputs)
        grads = torch.autograd.grad(out, inputs, relevance / stabilized(out.detach()))
        return (None, *(x.detach() * g for x, g in zip(inputs, grads, strict=True)))


def epsilon(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """``fn(*inputs)``, whose relevance flows back by LRP-0 (``fn`` linear in ``inputs``; constants closed over)."""
    return _Epsilon.apply(fn, *inputs)


class _Pass(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fn: Callable[..., torch.Tensor], index: int, *args: Any) -> torch.Tensor:
        ctx.index, ctx.shapes = index, [a.shape if isinstance(a, torch.Tensor) else None for a in args]
        return fn(*args)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # zeros, not None, for the other inputs: zennit's rules on the layers before a gate expect a tensor
        grads = [relevance.new_zeros(shape) if shape is not None and needed else None
                 for shape, needed in zip(ctx.shapes, ctx.needs_input_grad[2:], strict=True)]
        grads[ctx.index] = relevance.sum_to_size(ctx.shapes[ctx.index])
        return (None, None, *grads)


def passing(fn: Callable[..., torch.Tensor], index: int, *args: Any) -> torch.Tensor:
    """``fn(*args)``, whose relevance goes unchanged to ``args[index]`` (summed over broadcast dimensions)."""
    return _Pass.apply(fn, index, *args)


def _constant_statistics(x: torch.Tensor, dims: Sequence[int], eps: float) -> torch.Tensor:
    """``x`` centred over ``dims`` and divided by its standard deviation there, which counts as a constant."""
    centred = x - x.mean(dims, keepdim=True)
    return centred / torch.sqrt(x.detach().var(dims, unbiased=False, keepdim=True) + eps)


def layer_norm(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """``F.layer_norm`` with its statistics as constants (Ali et al. 2022), relevance by :func:`epsilon`."""
    dims = tuple(range(-len(normalized_shape), 0))

    def normalize(x: torch.Tensor) -> torch.Tensor:
        y = _constant_statistics(x, dims, eps)
        y = y * weight if weight is not None else y
        return y + bias if bias is not None else y

    return epsilon(normalize, x)


def group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """``F.group_norm`` with its statistics as constants (Ali et al. 2022), relevance by :func:`epsilon`."""
    shape = (-1, *[1] * (x.dim() - 2))

    def normalize(x: torch.Tensor) -> torch.Tensor:
        y = _constant_statistics(x.reshape(x.shape[0], num_groups, -1), (2,), eps).reshape(x.shape)
        y = y * weight.view(shape) if weight is not None else y
        return y + bias.view(shape) if bias is not None else y

    return epsilon(normalize, x)


def norm_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The forward of an ``nn.LayerNorm`` or ``nn.GroupNorm`` with the rule above (bound on the copy)."""
    if isinstance(module, nn.GroupNorm):
        return group_norm(x, module.num_groups, module.weight, module.bias, module.eps)
    return layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)


def batch_norm_forward(module: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """An eval-mode batch norm that no layer can absorb, as the affine map it is, relevance by :func:`epsilon`."""
    shape = (-1, *[1] * (x.dim() - 2))
    scale = torch.rsqrt(module.running_var + module.eps)
    scale = scale * module.weight if module.weight is not None else scale
    shift = -module.running_mean * scale + (module.bias if module.bias is not None else 0)
    return epsilon(lambda x: x * scale.view(shape).detach() + shift.view(shape).detach(), x)

