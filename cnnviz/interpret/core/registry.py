"""The method registry: register a method once; the CLI, gallery and tests read it.

A registered method is called as ``method(model, images, target=None, **options)``.
The registry wraps it so that it accepts a zoo handle or a plain module and a
batch or a single image, and runs it inside :func:`zoo.guard.preserve`,
so no method can leave the model changed.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn

from cnnviz.interpret.core.option_spec import OptionSpec, option_specs
from cnnviz.zoo.core import check_call
from cnnviz.zoo.core import CnnvizError, closest
from cnnviz.zoo.core import preserve
from cnnviz.zoo.handle import ModelHandle, as_handle

MethodFn = Callable[..., Any]
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes:
        name: the name users type (``cnnviz explain gradcam``).
        fn: the wrapped callable.
        family: ``"attribution"``, ``"optimization"``, ...
        summary: one line for listings.
        uses_layer: whether it takes ``layer=`` (CAM-type methods).
        group: the kind within the family, for listings (``"cams"``, ``"perturbation"``, ``"captum"``).
        order: position in listings (the course's order), so moving a file reorders nothing.
        detail: the same computation with the same options, returning the method's full result (a dataclass whose
            ``maps`` is what ``fn`` returns, and which the views draw a panel of), or None.
    """

    name: str
    fn: MethodFn
    family: str
    summary: str
    uses_layer: bool
    group: str = ""
    order: int = 1000
    detail: MethodFn | None = None

    def options(self) -> dict[str, OptionSpec]:
        """The method's keyword-only options (but ``layer``), each described once: type, range, choices,
        default and help (:class:`~interpret.core.option_spec.OptionSpec`); the CLI flags and the explorer's
        widgets are generated from them."""
        return dict(_described(self.fn))  # a copy: the cached descriptions stay as they are


@functools.lru_cache(maxsize=None)
def _described(fn: MethodFn) -> dict[str, OptionSpec]:
    return option_specs(fn)


_METHODS: dict[str, Method] = {}


def as_batch(images: torch.Tensor, handle: ModelHandle, *, whole_model: bool = True) -> torch.Tensor:
    """A detached ``(B, C, H, W)`` batch of finite pixels in [0, 1] on the handle's device.

    ``whole_model``: the method runs the network to its logits, so a fixed-size model needs its own size
    (layer methods that stop early, such as DeepDream, take any size).
    """
    if not isinstance(images, torch.Tensor):
        raise CnnvizError(f"images must be a tensor batch (B, C, H, W), got {type(images).__name__}: "
                          "use handle.prepare(...) to make one")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise CnnvizError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] != handle.in_channels:
        raise CnnvizError(f"the model takes {handle.in_channels}-channel images, got {images.shape[1]} channels")
    if images.shape[0] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise CnnvizError(f"the batch is empty (shape {tuple(images.shape)}): give at least one image")
    if not images.dtype.is_floating_point:
        raise CnnvizError(f"images are floats in [0, 1], got {images.dtype}: divide by 255 (handle.prepare does)")
    config = handle.config
    if whole_model and config.fixed_input and tuple(images.shape[2:]) != (config.input_size, config.input_size):
        raise CnnvizError(f"{handle.name} takes only {config.input_size} x {config.input_size} images, got "
                          f"{images.shape[2]} x {images.shape[3]}: use handle.prepare(...)")
    images = images.detach().to(handle.device, torch.float32)
    low, high = torch.aminmax(images)
    if not (torch.isfinite(low) and torch.isfinite(high)):
        raise CnnvizError("the images hold NaN or infinite values: give finite pixels in [0, 1]")
    if low < -1 or high > 2:  # far outside [0, 1]: 0-255 values or normalized images (noisy copies may stray a little)
        raise CnnvizError(f"images are pixels in [0, 1], got values from {low:.3g} to {high:.3g}: methods "
                          "normalize inside the model handle, so pass unnormalized images (divide 0-255 by 255)")
    return images


def _guarded(fn: Callable[..., Any], name: str, family: str) -> Callable[..., Any]:
    """``fn`` taking a handle or a module and a batch or one image, its ranges checked, run under the guard."""

    @functools.wraps(fn)
    def run(model: nn.Module, images: torch.Tensor | None = None, target: Any = None, **options: Any) -> Any:
        check_call(fn, options)  # the ranges declared in fn's signature, as the CLI checks them
        handle = as_handle(model)
        batch = as_batch(images, handle, whole_model=family == "attribution") if images is not None else None  # optimizers may start from noise
        with preserve(handle):
            result = fn(handle, batch, target, **options)
        if isinstance(result, torch.Tensor) and result.is_floating_point():
            if not torch.isfinite(result).all():
                raise CnnvizError(f"{name} gave NaN or infinite values on these images: the model's outputs "
                                  "are not finite (check its weights) or an option is too large")
            result = result.float()  # a model run in bf16 or fp16 still gives float32 maps
        return result

    return run


def method(name: str, family: str, summary: str, *, group: str = "", order: int = 1000,
           detail: Callable[..., Any] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator registering ``fn(handle, images, target, **options)`` as method ``name``.

    ``order`` places it in listings (ties keep registration order); the built-in methods each declare theirs,
    a user's method without one comes after them. ``detail``: a function with ``fn``'s options that returns the
    full result whose ``maps`` ``fn`` returns (the CLI and the gallery draw its own panel).

    The returned function keeps ``fn``'s signature (``ParamSpec``), so type checkers and IDEs
    see every parameter; at run time it also accepts a plain module and a single image.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if name in _METHODS:
            raise RuntimeError(f"method {name!r} registered twice")

        run = _guarded(fn, name, family)
        uses_layer = "layer" in inspect.signature(fn).parameters
        _METHODS[name] = Method(name, run, family, summary, uses_layer, group, order,
                                _guarded(detail, name, family) if detail is not None else None)
        return run  # type: ignore[return-value]  # same parameters as fn, plus plain-module input

    return decorate


def methods(family: str | None = None) -> list[Method]:
    """Registered methods, optionally of one family, in listing order (``order=``, then registration)."""
    return sorted((m for m in _METHODS.values() if family is None or m.family == family), key=lambda m: m.order)


_FACTORIES: dict[str, Callable[[str], Method]] = {}


def method_factory(prefix: str, build: Callable[[str], Method]) -> None:
    """Let ``get_method`` build methods named ``prefix...`` on demand (``captum:DeepLift``)."""
    _FACTORIES[prefix] = build


def get_method(name: str, family: str | None = None) -> Method:
    """The method ``name``; unknown names get the closest matches."""
    candidates = {m.name: m for m in methods(family)}
    for prefix, build in _FACTORIES.items():
        if name not in candidates and name.startswith(prefix):
            built = build(name)
            if family is None or built.family == family:
                return built
    if name not in candidates:
        raise CnnvizError(f"unknown method {name!r}{closest(name, candidates)}; "
                          f"choose from {', '.join(candidates) or '(none registered)'}")
    return candidates[name]
