"""A method's options described once, from its signature and docstring: name, type, declared range
(:mod:`zoo.checks`), choices (a ``Literal``), default and help (the docstring's ``Args:``). The CLI's flags and
the explorer's widgets and OpenAPI are generated from these descriptions.

Example:
    >>> from typing import Literal
    >>> from cnnviz.zoo.core import PositiveInt
    >>> def blur(images, *, taps: PositiveInt = 5, mode: Literal["same", "valid"] = "same", fast: bool = True):
    ...     '''Blur.
    ...
    ...     Args:
    ...         taps: filter length.
    ...     '''
    >>> specs = option_specs(blur)
    >>> specs["taps"].type, specs["taps"].minimum, specs["taps"].help, specs["mode"].choices, specs["fast"].default
    (<class 'int'>, 1, 'filter length.', ('same', 'valid'), True)
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from cnnviz.zoo.core import Between, declared, literal_choices

PLAIN = (bool, int, float, str)


@dataclass(frozen=True)
class OptionSpec:
    """One keyword option of a method.

    Attributes:
        name: the parameter's name.
        type: ``bool``, ``int``, ``float`` or ``str`` (a ``Literal``'s choices are strings), or None for a value
            only Python can give (a callable, a tensor, a union of several types).
        default: the signature's default (``inspect.Parameter.empty`` when there is none).
        help: the docstring's ``Args:`` line for it ("" when there is none).
        bounds: the declared range of a number (:class:`zoo.checks.Between`), or None.
        choices: the values of a ``Literal``, or None.
        nullable: whether None is accepted (``X | None``).
    """

    name: str
    type: type | None
    default: Any
    help: str = ""
    bounds: Between | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False

    @property
    def minimum(self) -> float | None:
        """The range's low end (None: unbounded)."""
        return self.bounds.low if self.bounds is not None else None

    @property
    def maximum(self) -> float | None:
        """The range's high end (None: unbounded)."""
        return self.bounds.high if self.bounds is not None else None


def docstring_args(fn: Callable[..., Any]) -> dict[str, str]:
    """The ``Args:`` section of ``fn``'s docstring, one joined line per parameter (``a, b: text`` gives ``a``)."""
    doc = inspect.getdoc(fn) or ""
    match = re.search(r"Args:\n(.*?)(\n\S|\Z)", doc, re.S)
    found: dict[str, str] = {}
    if not match:
        return found
    current = None
    for line in match.group(1).splitlines():
        head = re.match(r"\s{4}(\w+)(?:,\s*\w+)*:\s*(.*)", line)
        if head:
            current = head.group(1)
            found[current] = head.group(2)
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


def _plain(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``| None`` (None when several types remain), and whether None is allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else None), len(args) < len(typing.get_args(annotation))
    return annotation, False


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation that cannot be evaluated: the options are described as Python-only values
        return {}


def option_spec(name: str, annotation: Any, default: Any, help: str = "") -> OptionSpec:
    """The description of one option from its annotation and default."""
    plain, nullable = _plain(annotation)
    found, choices = declared(annotation), literal_choices(annotation)
    if found is not None:
        kind: type | None = found[0]
    elif choices is not None:
        kind = type(choices[0]) if choices and all(type(c) is type(choices[0]) for c in choices) else None
    else:
        base = typing.get_args(plain)[0] if typing.get_origin(plain) is typing.Annotated else plain
        kind = base if base in PLAIN else None
    return OptionSpec(name, kind, default, help, found[1] if found is not None else None, choices, nullable)


def option_specs(fn: Callable[..., Any], *, skip: Collection[str] = ("layer",)) -> dict[str, OptionSpec]:
    """Every keyword-only option of ``fn`` (but ``skip``), described, in signature order."""
    hints, docs = _hints(fn), docstring_args(fn)
    return {name: option_spec(name, hints.get(name, p.annotation), p.default, docs.get(name, ""))
            for name, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in skip}
