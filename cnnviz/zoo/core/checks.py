"""Option ranges, declared once in a signature and checked the same way from Python and the CLI.

A method states the range of an option in its annotation, ``window: Annotated[int, AtLeast(1)] = 32``.
The method registry checks every call against it (:func:`check_call`), and the CLI builds each
flag's ``type=`` from the same declaration (:func:`argparse_type`), so ``occlusion(..., window=0)``
and ``cnnviz explain occlusion --window 0`` fail with the same one line. Booleans are not numbers,
NaN and infinity are never in range, and a float is not an int.

Example:
    >>> from typing import Annotated
    >>> def blur(image, *, sigma: Annotated[float, Between(0, 10)] = 1.0, taps: Annotated[int, AtLeast(1)] = 5):
    ...     return sigma, taps
    >>> check_call(blur, {"sigma": 2.5})
    >>> check_call(blur, {"taps": 0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: taps must be at least 1, got 0
    >>> check_call(blur, {"sigma": float("nan")})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: sigma must be a finite number between 0 and 10, got nan
"""

from __future__ import annotations

import argparse
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnviz.zoo.core.errors import CnnvizError


@dataclass(frozen=True)
class Between:
    """A number in ``[low, high]`` (either end None: open); ``open_low``/``open_high`` exclude the ends."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    words: str | None = None  # how to say the range, when plain bounds read badly


    def describe(self) -> str:
        """The range in words: ``positive``, ``at least 1``, ``between 0 and 1``, ..."""
        low, high = self.low, self.high
        if self.words is not None:
            return self.words
        if low is None and high is None:
            return "finite"
        if high is None:
            return "positive" if low == 0 and self.open_low else \
                f"{'greater than' if self.open_low else 'at least'} {low:g}"
        if low is None:
            return f"{'less than' if self.open_high else 'at most'} {high:g}"
        if self.open_low == self.open_high:
            return f"{'strictly ' if self.open_low else ''}between {low:g} and {high:g}"
        return (f"{'greater than' if self.open_low else 'at least'} {low:g} and "
                f"{'less than' if self.open_high else 'at most'} {high:g}")

    def check(self, name: str, value: Any, kind: type) -> Any:
        """``value`` if it is a ``kind`` in range, else one clear :class:`CnnvizError`."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise CnnvizError(f"{name} must be {'an integer' if kind is int else 'a number'} "
                              f"{self.describe()}, got {value!r}")
        if not math.isfinite(value):
            raise CnnvizError(f"{name} must be a finite number {self.describe()}, got {value!r}")
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if below or above:
            raise CnnvizError(f"{name} must be {self.describe()}, got {value!r}")
        return value


def AtLeast(low: float) -> Between:  # noqa: N802  (reads as a type in annotations)
    """A number ``>= low``."""
    return Between(low=low)


def Positive() -> Between:  # noqa: N802
    """A number ``> 0``."""
    return Between(low=0, open_low=True)


def Probability(*, open_ends: bool = False) -> Between:  # noqa: N802
    """A number in ``[0, 1]`` (``open_ends``: in ``(0, 1)``)."""
    return Between(0, 1, open_low=open_ends, open_high=open_ends,
                   words=f"a probability {'strictly ' if open_ends else ''}between 0 and 1")


def Finite() -> Between:  # noqa: N802
    """Any finite number."""
    return Between()


def declared(annotation: Any) -> tuple[type, Between] | None:
    """``(int | float, range)`` of an ``Annotated[number, Between]`` annotation (optionally ``| None``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    base, *extras = typing.get_args(annotation)
    found = next((e for e in extras if isinstance(e, Between)), None)
    return (base, found) if found is not None and base in (int, float) else None


@functools.lru_cache(maxsize=None)
def declarations(fn: Callable[..., Any]) -> dict[str, tuple[type, Between]]:
    """Every declared option range of ``fn``, by parameter name."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation that cannot be evaluated declares nothing we can check
        return {}
    return {name: found for name, hint in hints.items() if (found := declared(hint)) is not None}


def literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal[...]`` annotation (optionally ``| None``), else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None


@functools.lru_cache(maxsize=None)
def choice_declarations(fn: Callable[..., Any]) -> dict[str, tuple[Any, ...]]:
    """Every option of ``fn`` declared as a ``Literal`` of choices, by parameter name."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation that cannot be evaluated declares nothing we can check
        return {}
    return {name: found for name, hint in hints.items() if (found := literal_choices(hint)) is not None}


def check_call(fn: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Check the given ``options`` of a call to ``fn`` against its declared ranges and choices (None is let
    through).

    Example:
        >>> from typing import Literal
        >>> def fill(image, *, mode: Literal["black", "blur"] = "black"):
        ...     return mode
        >>> check_call(fill, {"mode": "gray"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cnnviz.CnnvizError: unknown mode 'gray': choose from black, blur
    """
    for name, (kind, bounds) in declarations(fn).items():
        if name in options and options[name] is not None:
            bounds.check(name, options[name], kind)
    for name, choices in choice_declarations(fn).items():
        value = options.get(name)
        if value is not None and not any(value == c and type(value) is type(c) for c in choices):
            raise CnnvizError(f"unknown {name} {value!r}: choose from {', '.join(map(str, choices))}")


def argparse_type(kind: type, bounds: Between, name: str,
                  parse: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses ``kind`` (or uses ``parse``) and checks ``bounds``.

    The message is the one Python callers get for option ``name`` (argparse adds the flag).
    """

    def convert(text: str) -> Any:
        try:
            value = parse(text) if parse is not None else kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            return bounds.check(name, value, kind)
        except CnnvizError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    convert.declared = (kind, bounds)  # type: ignore[attr-defined]  # for tests that generate bad values
    return convert


def option_type(annotation_or_fn: Any, name: str, parse: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """The argparse ``type=`` of option ``name``: from a function's declared range, or from an annotation alias.

    Example:
        >>> option_type(PositiveInt, "depth")("3")
        3
    """
    found = declarations(annotation_or_fn).get(name) if callable(annotation_or_fn) and not \
        typing.get_origin(annotation_or_fn) else declared(annotation_or_fn)
    if found is None:
        raise TypeError(f"no declared range for {name!r}")  # a programming error, not user input
    return argparse_type(*found, name, parse)


# The ranges most options have, as annotations that read like types: ``steps: PositiveInt = 32``.
PositiveInt = typing.Annotated[int, AtLeast(1)]
NonNegativeInt = typing.Annotated[int, AtLeast(0)]
PositiveFloat = typing.Annotated[float, Positive()]
NonNegativeFloat = typing.Annotated[float, AtLeast(0)]
UnitInterval = typing.Annotated[float, Between(0, 1)]  # a pixel value or a fraction, in [0, 1]: not called a probability
OpenUnitInterval = typing.Annotated[float, Probability(open_ends=True)]  # a probability strictly inside (0, 1)
FiniteFloat = typing.Annotated[float, Finite()]
ScaleFactor = typing.Annotated[float, Between(1, 4)]  # how much each octave of an image pyramid grows
# The side of an image that a method optimizes as a whole (actmax, inversion): beyond it, backward
# passes need more memory than a workstation has (efficientnet_lite0: about 8 GB per image at 2048 px).
MAX_OPTIMIZED_SIDE = 2048
ImageSide = typing.Annotated[int, Between(8, MAX_OPTIMIZED_SIDE)]
# The side of a picture that a tiled method (DeepDream) processes piece by piece.
LargeImageSide = typing.Annotated[int, Between(8, 8192)]
