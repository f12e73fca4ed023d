"""Every hook cnnviz registers lives here, inside context managers (plain torch, so zoo can use it).

Hooks are
removed in ``finally``, so a method that raises leaves no hook behind. Gradients of an activation are taken with a tensor hook registered
inside the forward hook, which sees the output even when a later op works
in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.errors import CnnvizError

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


def hookable(module: nn.Module) -> nn.Module:
    """``module``, or a clear error when it cannot take hooks (a TorchScript module)."""
    if isinstance(module, torch.jit.ScriptModule):
        raise CnnvizError("this layer belongs to a TorchScript program, whose layers take no hooks: layer methods "
                          "(CAM, feature maps, inversion, DeepDream, atlas) need the model as Python code "
                          "(file.py:FACTORY, torchvision:NAME, timm:NAME) or as a torch.export .pt2 file")
    return module


@contextmanager
def _registered(hooks: Iterable[tuple[nn.Module, Callable[..., Any]]], kind: str) -> Iterator[None]:
    """Register each pair with ``module.<kind>(hook)``; every one is removed in ``finally``."""
    handles = []
    try:
        for module, hook in hooks:
            handles.append(getattr(hookable(module), kind)(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def forward_hooks(hooks: Iterable[tuple[nn.Module, ForwardHook]]) -> AbstractContextManager[None]:
    """Register ``(module, hook)`` pairs for the duration of the block.

    A hook may return a replacement output, as with ``register_forward_hook``.
    """
    return _registered(hooks, "register_forward_hook")


def forward_pre_hooks(hooks: Iterable[tuple[nn.Module, Callable[..., Any]]]) -> AbstractContextManager[None]:
    """Register ``(module, pre_hook)`` pairs for the duration of the block."""
    return _registered(hooks, "register_forward_pre_hook")


@dataclass
class Recording:
    """What one module produced during the forward passes inside ``record``.

    ``outputs[i]`` and ``grads[i]`` belong to the i-th call of the module, so a
    module used several times in one forward pass (a shared ReLU) is recorded
    call by call, never overwritten.
    """

    name: str
    outputs: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor | None] = field(default_factory=list)

    def _single(self, items: list[Any], what: str) -> Any:
        if not items:
            raise CnnvizError(f"layer {self.name!r} did not run in the forward pass: pick another layer")
        if len(items) > 1:
            raise CnnvizError(
                f"layer {self.name!r} runs {len(items)} times per forward pass (a shared module), "
                f"so its {what} is ambiguous: pick a layer that runs once"
            )
        return items[0]

    @property
    def output(self) -> torch.Tensor:
        """The output of the module's only call."""
        return self._single(self.outputs, "output")

    @property
    def grad(self) -> torch.Tensor:
        """The gradient at the output of the module's only call."""
        grad = self._single(self.grads, "gradient")
        if grad is None:
            raise CnnvizError(f"no gradient reached layer {self.name!r}: the target does not depend on it")
        return grad


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class StopForward(BaseException):
    """Raised inside :func:`run_until` once every module it waits for has run.

    A BaseException, so a model's own ``except Exception`` cannot swallow it.
    Nothing outside :func:`run_until` raises or catches it.
    """


def run_until(model: nn.Module, images: torch.Tensor, modules: Iterable[nn.Module]) -> torch.Tensor | None:
    """``model(images)``, ended as soon as every module of ``modules`` has run once.

    The one early stop of cnnviz: the layers after the last needed one cost
    nothing, and a dense head that takes one input size only never runs. Hooks
    registered before the call (a :func:`record`) still see each module's output.

    Returns:
        The model's output when the pass ran to the end (``modules`` empty, or one
        of them never ran), else None.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        >>> with record({"0": net[0]}) as rec:
        ...     logits = run_until(net, torch.rand(1, 3, 12, 12), [net[0]])  # the Linear never sees 10x10
        >>> logits is None, rec["0"].output.shape
        (True, torch.Size([1, 4, 10, 10]))
    """
    waiting = {id(m): m for m in modules}
    if not waiting:
        return model(images)
    seen: set[int] = set()

    def make_hook(key: int) -> ForwardHook:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            seen.add(key)
            if len(seen) == len(waiting):
                raise StopForward
        return hook

    try:
        with forward_hooks((m, make_hook(key)) for key, m in waiting.items()):
            return model(images)
    except StopForward:
        return None


@contextmanager
def record(layers: dict[str, nn.Module], *, grads: bool = False,
           detach: bool = True) -> Iterator[dict[str, Recording]]:
    """Record the outputs (and, with ``grads``, output gradients) of named modules.

    The network downstream gets a copy of each recorded output, so a later
    in-place op (``ReLU(inplace=True)`` after a conv) cannot change what was
    recorded, and ``torch.autograd.grad(score, recording.output)`` stays valid:
    it differentiates only down to the layer.

    Args:
        layers: ``{name: module}`` to watch.
        grads: also keep the gradient flowing into each output on backward.
        detach: store detached outputs (keep False to differentiate through them).
            To skip the network after the layers, run the model with :func:`run_until`.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> with record({"layer4": net.layer4}) as rec:
        ...     _ = net(torch.rand(1, 3, 64, 64))
        >>> rec["layer4"].output.shape
        torch.Size([1, 512, 2, 2])
    """
    recordings = {name: Recording(name) for name in layers}

    def make_hook(rec: Recording) -> ForwardHook:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
            tensor = _first_tensor(output)
            if tensor is None:  # not a tensor-valued layer: nothing to record
                return None
            rec.outputs.append(tensor.detach() if detach else tensor)
            if grads:
                index = len(rec.grads)
                rec.grads.append(None)
                if tensor.requires_grad:
                    def keep(grad: torch.Tensor) -> None:
                        rec.grads[index] = grad.detach()
                    tensor.register_hook(keep)
            return tensor.clone() if output is tensor else None

        return hook

    with forward_hooks((module, make_hook(recordings[name])) for name, module in layers.items()):
        yield recordings


@contextmanager
def graph_from(module: nn.Module, name: str = "layer") -> Iterator[Recording]:
    """Let the autograd graph start at ``module``'s output: nothing below it is tracked.

    Inside the block, gradient tracking is off until ``module`` runs; its
    output is recorded as a new leaf that requires grad, and tracking is on for
    the rest of the forward pass. ``torch.autograd.grad(score, rec.output)`` then
    equals the gradient through the full graph (nothing below the layer depends
    on its output), while the forward pass below it keeps no activations for a
    backward pass. The grad mode in force before the block is restored after it.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> with graph_from(net.layer4) as rec:
        ...     score = net(torch.rand(1, 3, 64, 64))[:, 0].sum()
        >>> torch.autograd.grad(score, rec.output)[0].shape
        torch.Size([1, 512, 2, 2])
    """
    rec = Recording(name)

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise CnnvizError(f"{type(module).__name__} returns {type(output).__name__}, not a tensor: "
                              "choose a layer with a tensor output")
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        rec.outputs.append(leaf)
        return leaf.clone()  # a later in-place op must not act on the leaf itself

    was_enabled = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        with forward_hooks([(module, hook)]):
            yield rec
    finally:
        torch.set_grad_enabled(was_enabled)


def hook_counts(model: nn.Module) -> dict[str, int]:
    """How many hooks of each kind are registered on ``model`` and its modules (for tests)."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_state_dict_hooks", "_load_state_dict_pre_hooks")
    return {kind: sum(len(getattr(m, kind, {})) for m in model.modules()) for kind in kinds}
