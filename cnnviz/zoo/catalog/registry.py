"""The registry of the zoo's own models; ``zoo.load`` (:mod:`zoo.sources`) builds them and every other source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.handle.handle import ModelHandle

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
        config: the model's configuration, read without building it (None: build to know).
    """

    name: str
    build: Builder
    summary: str
    weights_file: Callable[[], Path | None]
    config: Callable[[], ModelConfig] | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, summary: str, weights_file: Callable[[], Path | None], *,
             config: Callable[[], ModelConfig] | None = None) -> Callable[[Builder], Builder]:
    """Decorator adding a builder to the zoo under ``name`` (build it with ``zoo.load(name)``)."""

    def decorate(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, build, summary, weights_file, config)
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
