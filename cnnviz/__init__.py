"""cnnviz: see inside convolutional networks.

One name on the Python path, with one subpackage per concern:

- :mod:`cnnviz.zoo` — models, weights, images, data sets, hooks and the training loop;
- :mod:`cnnviz.interpret` — attribution, optimization, attacks, the inside of a network, evaluation, drawing;
- :mod:`cnnviz.cli`, :mod:`cnnviz.gallery`, :mod:`cnnviz.explorer` — the command line, the static site and the
  local web app, built on the two above.

Subpackages load when first used, so ``import cnnviz`` stays cheap.

Example:
    >>> from cnnviz import interpret, zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> import cnnviz
    >>> cnnviz.interpret is interpret
    True
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["cli", "explorer", "gallery", "interpret", "zoo"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
