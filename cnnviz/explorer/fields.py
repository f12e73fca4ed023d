"""The kinds of value a request field holds. Each kind checks a value, given as JSON or as the text of a path,
a query or a form field, and describes itself as JSON Schema for ``/api/openapi.json``: the check and its
documentation are one object, so they cannot drift apart.

Example:
    >>> top = Integer(Between(1, 1000))
    >>> top.decode("top", "5", text=True), top.schema()
    (5, {'type': 'integer', 'minimum': 1, 'maximum': 1000, 'description': 'between 1 and 1000'})
    >>> top.decode("top", 0, text=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: top must be between 1 and 1000, got 0
    >>> Region().decode("region", "0,0,8,8", text=True)
    (0.0, 0.0, 8.0, 8.0)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cnnviz.explorer.body import parse_json
from cnnviz.explorer.errors import NotFound
from cnnviz.zoo.core import Between
from cnnviz.zoo.core import CnnvizError

INTEGER = re.compile(r"-?\d+")
NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
SHOWN = 80  # characters of a refused value an error repeats


def shown(value: Any) -> str:
    """A refused value as an error repeats it: its repr, cut to :data:`SHOWN` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


@dataclass(frozen=True, kw_only=True)
class Kind:
    """What a field holds: ``what`` says it in words (in errors and in the document); ``verb`` joins the field's
    name to it in an error; a value of a kind with ``error=NotFound`` that fails names nothing (404)."""

    what: str = ""
    verb: str = "must be"
    error: type[CnnvizError] = CnnvizError

    def refuse(self, name: str, value: Any) -> CnnvizError:
        return self.error(f"{name} {self.verb} {self.what}, got {shown(value)}")

    def decode(self, name: str, value: Any, text: bool) -> Any:
        """``value`` checked (``text``: it is the text of a path, query or form field)."""
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the values this kind accepts."""
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Kind):
    """A string, matching ``pattern`` when one is given."""

    pattern: str | None = None

    def decode(self, name: str, value: Any, text: bool) -> str:
        if not isinstance(value, str) or (self.pattern is not None and not re.fullmatch(self.pattern, value)):
            raise self.refuse(name, value)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", **({"pattern": f"^{self.pattern}$"} if self.pattern else {})}


@dataclass(frozen=True)
class Upload(Text):
    """A file sent as a multipart field, kept by the server under the name it answers with."""

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "binary"}


@dataclass(frozen=True)
class Integer(Kind):
    """An integer in ``bounds``, said in the bounds' words unless ``what`` is given."""

    bounds: Between = Between()
    number = int  # what a value is: an int here, a float for a Number
    text_form = INTEGER

    def decode(self, name: str, value: Any, text: bool) -> Any:
        if text and isinstance(value, str) and self.text_form.fullmatch(value.strip()):
            value = self.number(value)
        try:
            return self.bounds.check(name, value, self.number)
        except CnnvizError:
            if self.what:  # said in the field's own words
                raise self.refuse(name, value) from None
            raise

    def schema(self) -> dict[str, Any]:
        ends = {"minimum": self.bounds.low, "maximum": self.bounds.high}
        return {"type": "integer" if self.number is int else "number",
                **{k: self.number(v) for k, v in ends.items() if v is not None},
                "description": self.what or self.bounds.describe()}


@dataclass(frozen=True)
class Number(Integer):
    """A number in ``bounds`` (text: its decimal form).

    Example:
        >>> Number(Between(0, 1)).decode("low", "0.25", text=True), Number(Between(0, 1)).schema()["type"]
        (0.25, 'number')
    """

    number = float
    text_form = NUMBER


@dataclass(frozen=True)
class Flag(Kind):
    """Yes or no: a JSON boolean, or text (empty, ``0``, ``false`` and ``no`` are no)."""

    def decode(self, name: str, value: Any, text: bool) -> bool:
        if text and isinstance(value, str):
            return value.strip().lower() not in ("", "0", "false", "no")
        if not isinstance(value, bool):
            raise self.refuse(name, value)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Choice(Kind):
    """One of ``values`` (a ``noun`` names them in the error: ``unknown optimization 'x': choose from ...``)."""

    values: tuple[str, ...] = ()
    noun: str = "value"

    def decode(self, name: str, value: Any, text: bool) -> str:
        if value not in self.values:
            raise self.error(f"unknown {self.noun} {shown(value)}: choose from {', '.join(self.values)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


@dataclass(frozen=True)
class ClassTarget(Kind):
    """A class index or (part of) a class name; text of digits is an index."""

    def decode(self, name: str, value: Any, text: bool) -> int | str:
        if text and isinstance(value, str) and INTEGER.fullmatch(value.strip()):
            return int(value)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.refuse(name, value)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": ["integer", "string"]}


@dataclass(frozen=True)
class Region(Kind):
    """Four numbers ``x0,y0,x1,y1``: text, or a list of four numbers."""

    def decode(self, name: str, value: Any, text: bool) -> tuple[float, ...]:
        parts = value.split(",") if isinstance(value, str) else value
        try:
            values = tuple(float(v) for v in parts)
        except (TypeError, ValueError):
            values = ()
        if len(values) != 4:
            raise self.refuse(name, value)
        return values

    def schema(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "string", "pattern": r"^[^,]+,[^,]+,[^,]+,[^,]+$"},
                          {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}]}


@dataclass(frozen=True)
class Options(Kind):
    """A JSON object of a method's options (text: its JSON); ``methods`` lists the methods a request may name in
    its field ``by``, each with its own options' schema (:func:`~cnnviz.explorer.openapi.option_schema`)."""

    by: str = "method"
    methods: Callable[[], Iterable[Any]] = tuple

    def decode(self, name: str, value: Any, text: bool) -> dict[str, Any]:
        if text and isinstance(value, str):
            value = parse_json(value.encode(), what=name)
        if not isinstance(value, dict):
            raise self.error(f"{name} must be {self.what}, got {type(value).__name__}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "object"}


@dataclass(frozen=True)
class Pair(Kind):
    """A list of exactly two ``item`` values (or nulls, where ``nulls``); text: its JSON."""

    item: Kind = Text()
    nulls: bool = False

    def decode(self, name: str, value: Any, text: bool) -> tuple[Any, Any]:
        if text and isinstance(value, str):
            value = parse_json(value.encode(), what=name)
        if not isinstance(value, list) or len(value) != 2:
            raise self.refuse(name, value)
        try:
            first, second = (None if v is None and self.nulls else self.item.decode(name, v, False) for v in value)
        except CnnvizError:
            raise self.refuse(name, value) from None
        return first, second

    def schema(self) -> dict[str, Any]:
        item = self.item.schema()
        if self.nulls:
            item = {**item, "type": [item["type"], "null"]}
        return {"type": "array", "items": item, "minItems": 2, "maxItems": 2}


def key_kind(what: str) -> Text:
    """A result's key as the API answered it (32 hex digits); anything else names no result (404)."""
    return Text(what=what, pattern="[0-9a-f]{32}", error=NotFound)
