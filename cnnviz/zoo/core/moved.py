"""Old module paths that keep importing after a move, with a warning naming the new home, the way torchvision
and timm keep moved modules importable. One finder per package (``cnnviz.zoo``, ``cnnviz.interpret``),
each with its own map of old names to new homes.

Example:
    >>> import importlib, sys, warnings
    >>> _ = sys.modules.pop("cnnviz.zoo.training_log", None)  # imported before: import it afresh
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     module = importlib.import_module("cnnviz.zoo.training_log")
    >>> module.__name__, "cnnviz.zoo.train.log" in str(caught[0].message)
    ('cnnviz.zoo.train.log', True)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Mapping


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``PACKAGE.OLD`` for every old name in ``moved`` and hands back the module at its new home.

    Args:
        package: the package whose old modules moved (``"cnnviz.zoo"``).
        moved: old name inside ``package`` -> the new module's full name.
    """

    def __init__(self, package: str, moved: Mapping[str, str]) -> None:
        self.package, self.moved = package, dict(moved)
        self.specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def _old(self, fullname: str) -> str | None:
        old = fullname.removeprefix(self.package + ".")
        return old if fullname.startswith(self.package + ".") and old in self.moved else None

    def find_spec(self, fullname, path=None, target=None):  # noqa: D102  (the import system's protocol)
        return importlib.util.spec_from_loader(fullname, self) if self._old(fullname) else None

    def create_module(self, spec):  # noqa: D102
        new = self.moved[self._old(spec.name)]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (or from {self.package}'s face)",
                      DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)
        self.specs[new] = module.__spec__  # the import system stamps the old name's spec on it: undone below
        return module

    def exec_module(self, module):  # noqa: D102  (the new home is already executed)
        module.__spec__ = self.specs[module.__name__]


def install_moved(package: str, moved: Mapping[str, str]) -> MovedFinder:
    """Put one finder for ``package`` on ``sys.meta_path`` (once) and return it."""
    for finder in sys.meta_path:
        if isinstance(finder, MovedFinder) and finder.package == package:
            return finder
    finder = MovedFinder(package, moved)
    sys.meta_path.append(finder)
    return finder
