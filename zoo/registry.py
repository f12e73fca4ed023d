"""The registry of models: ``zoo.load(name)`` builds any entry by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.device import pick_device
from zoo.errors import CnnvizError, closest
from zoo.handle import ModelHandle

Builder = Callable[..., ModelHandle]


@dataclass(frozen=True)
class ModelEntry:
    """One model the zoo can build.

    Attributes:
        name: the name users type.
        build: ``build(weights) -> ModelHandle``; ``weights`` is ``"pretrained"``,
            a path, or ``None`` for random initialization.
        summary: one line for ``cnnviz models``.
        weights_file: where the pretrained weights are expected (for listings).
    """

    name: str
    build: Builder
    summary: str
    weights_file: Callable[[], Path | None]


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, summary: str, weights_file: Callable[[], Path | None]) -> Callable[[Builder], Builder]:
    """Decorator adding a builder to the zoo under ``name``."""

    def decorate(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, build, summary, weights_file)
        return build

    return decorate


def names() -> list[str]:
    """Names of every model in the zoo, in registration order."""
    return list(_REGISTRY)


def entry(name: str) -> ModelEntry:
    """The registry entry ``name``; unknown names get the closest matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CnnvizError(
            f"unknown model {name!r}{closest(name, _REGISTRY)} (list them with: cnnviz models)"
        ) from None


def load(name: str, device: str | None = None, weights: str | Path | None = "pretrained") -> ModelHandle:
    """Build model ``name`` in eval mode on ``device`` (best available by default).

    Args:
        name: a name from :func:`names`, e.g. ``"efficientnet_lite0"``.
        device: ``"cpu"``, ``"cuda"``, ... or ``None`` to pick automatically.
        weights: ``"pretrained"`` (shipped or locally cached weights), a path to
            a state dict, or ``None`` for random weights.

    Example:
        >>> handle = load("efficientnet_lite0", device="cpu")
        >>> handle.input_size, handle.classes[281]
        (224, 'tabby')
    """
    handle = entry(name).build(weights)
    return handle.to(pick_device(device)).eval()
