"""A method's options as the explorer takes them from JSON: described from the signature (for the page and
the OpenAPI document) and checked before any work, with the ranges the CLI checks (``zoo.checks``).

Example:
    >>> from cnnviz import interpret
    >>> occlusion = interpret.get_method("occlusion")
    >>> check_options(occlusion, {"window": 48})
    {'window': 48}
    >>> check_options(occlusion, {"window": 0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.zoo.core.errors.CnnvizError: window must be at least 1, got 0
"""

from __future__ import annotations

import types
import typing
from typing import Any

from cnnviz.interpret import Method
from cnnviz.zoo.core import CnnvizError, check_call, closest, declared

SIMPLE = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _plain(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``| None``, and whether None is allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(annotation))
    return annotation, False


def _hints(method: Method) -> dict[str, Any]:
    try:
        return typing.get_type_hints(method.fn, include_extras=True)
    except Exception:  # an annotation that cannot be evaluated: described as a plain value
        return {}


def option_fields(method: Method) -> list[dict[str, Any]]:
    """One description per option a request may set: name, JSON type, default, choices, declared range."""
    hints = _hints(method)
    fields = []
    for name, parameter in method.options().items():
        annotation, nullable = _plain(hints.get(name, Any))
        found = declared(hints.get(name, Any))
        field: dict[str, Any] = {"name": name, "default": parameter.default if _jsonable(parameter.default) else None,
                                 "nullable": nullable}
        if found is not None:
            field.update(type=SIMPLE[found[0]], range=found[1].describe())
            field.update({end: value for end, value in (("minimum", found[1].low), ("maximum", found[1].high))
                          if value is not None})
        elif typing.get_origin(annotation) is typing.Literal:
            field.update(type="string", choices=list(typing.get_args(annotation)))
        elif annotation in SIMPLE:
            field.update(type=SIMPLE[annotation])
        else:
            continue  # a callable or tensor option: Python only
        fields.append(field)
    return fields


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def check_options(method: Method, given: Any) -> dict[str, Any]:
    """``given`` if every option is one ``method`` takes, of its type and in its declared range."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise CnnvizError(f"options must be a JSON object of option names and values, got {type(given).__name__}")
    fields = {field["name"]: field for field in option_fields(method)}
    for name, value in given.items():
        field = fields.get(name)
        if field is None:
            raise CnnvizError(f"{method.name} has no option {name!r}{closest(name, fields)}; its options: "
                              f"{', '.join(fields) or 'none'}")
        if value is None and field["nullable"]:
            continue
        if "choices" in field and value not in field["choices"]:
            raise CnnvizError(f"{name} must be one of {', '.join(map(str, field['choices']))}, got {value!r}")
        kind = {"boolean": bool, "string": str}.get(field["type"])
        if kind is not None and not isinstance(value, kind):
            raise CnnvizError(f"{name} must be a {field['type']}, got {value!r}")
        if field["type"] in ("integer", "number") and "range" not in field and (
                isinstance(value, bool) or not isinstance(value, int if field["type"] == "integer" else (int, float))):
            raise CnnvizError(f"{name} must be an {field['type']}, got {value!r}")
    check_call(method.fn, given)
    return dict(given)
