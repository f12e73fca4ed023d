"""``preserve(model)``: whatever a method does, the model comes back as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def preserve(model: nn.Module, *, eval_mode: bool = True, freeze: bool = True) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode and frozen, then restore it exactly.

    Restores each module's train/eval flag and each parameter's
    ``requires_grad`` and ``.grad`` in ``finally``, so it holds when the
    block raises too. Methods differentiate with ``torch.autograd.grad``
    with respect to their inputs; freezing keeps parameter gradients from
    being computed at all.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18().train()
        >>> with preserve(net):
        ...     assert not net.training
        >>> net.training
        True
    """
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        if eval_mode:
            model.eval()
        if freeze:
            for p, _, _ in params:
                p.requires_grad_(False)
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad
