"""cnnviz: see inside convolutional networks.

One name on the Python path, with one subpackage per concern:

- :mod:`cnnviz.zoo` — models, weights, images, data sets, hooks and the training loop;
- :mod:`cnnviz.interpret` — attribution, optimization, attacks, the inside of a network, evaluation, drawing;
- :mod:`cnnviz.cli`, :mod:`cnnviz.gallery`, :mod:`cnnviz.explorer` — the command line, the static site and the
  local web app, built on the two above.

Subpackages load when first used, so ``import cnnviz`` stays cheap. Bad input raises
:class:`cnnviz.CnnvizError` everywhere (a ``ValueError`` with a one-line message).

Example:
    >>> from cnnviz import interpret, zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> import cnnviz
    >>> cnnviz.interpret is interpret
    True
"""

from __future__ import annotations

import importlib

PACKAGES = ("cli", "explorer", "gallery", "interpret", "zoo")
__all__ = ["CnnvizError", *PACKAGES]


def __getattr__(name: str) -> object:
    if name in PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "CnnvizError":  # the one error type users catch
        return importlib.import_module(f"{__name__}.zoo").CnnvizError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
