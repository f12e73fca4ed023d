"""Typed requests: each kind of request is a frozen dataclass whose fields say what they hold (a
:mod:`~cnnviz.explorer.fields` kind), whether they are required, and their default. :meth:`Ask.decode` is the
one place a request's fields are checked; a handler gets the typed object and nothing else, so it can read no
field that the class, and so the OpenAPI document made from it, does not declare.

Example:
    >>> from dataclasses import dataclass
    >>> from cnnviz.explorer.fields import Integer, Text
    >>> from cnnviz.zoo.core import Between
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Top(Ask):
    ...     image: str = param(Text(what="a sample name"), "the image", required=True)
    ...     top: int = param(Integer(Between(1, 10)), "how many classes", default=5)
    >>> Top.decode({"image": "chelsea", "top": "3"}, text={"top"})
    Top(image='chelsea', top=3)
    >>> Top.decode({"top": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: image must be a sample name (none was given)
    >>> Top.decode({"image": "coffee"}).colour  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AttributeError: 'Top' object has no attribute 'colour'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cnnviz.explorer.fields import Kind

A = TypeVar("A", bound="Ask")


@dataclass(frozen=True)
class Param:
    """How a field is declared: its kind, what it is for (the document's description), whether it is
    required."""

    kind: Kind
    doc: str
    required: bool = False


def param(kind: Kind, doc: str = "", *, required: bool = False, default: Any = None) -> Any:
    """A field of a typed request (a ``dataclasses.field`` carrying its :class:`Param`)."""
    return dataclasses.field(default=default, metadata={"param": Param(kind, doc or kind.what, required)})


@dataclass(frozen=True, kw_only=True)
class Ask:
    """A request with no fields; subclasses declare theirs with :func:`param`."""

    @classmethod
    def params(cls) -> dict[str, Param]:
        """Every declared field, by name."""
        return {f.name: f.metadata["param"] for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default, by name."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def decode(cls: type[A], given: Mapping[str, Any], text: Collection[str] = ()) -> A:
        """The request from the ``given`` values (``text``: the names whose values are text, from a path, a query
        or a form); fields left out, null or empty take their defaults. Other names are ignored."""
        values = {}
        for name, declared in cls.params().items():
            value = given.get(name)
            if value is None or value == "":
                if declared.required:
                    raise declared.kind.error(f"{name} {declared.kind.verb} {declared.kind.what} (none was given)")
                continue
            values[name] = declared.kind.decode(name, value, name in text)
        return cls(**values)
