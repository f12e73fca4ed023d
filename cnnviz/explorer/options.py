"""A method's options as the explorer takes them from JSON: generated from the method's described options
(:meth:`interpret.Method.options`, as the CLI's flags are) for the page's widgets and the OpenAPI document,
and checked before any work, with the ranges the CLI checks (``zoo.checks``).

Example:
    >>> from cnnviz import interpret
    >>> occlusion = interpret.get_method("occlusion")
    >>> check_options(occlusion, {"window": 48})
    {'window': 48}
    >>> check_options(occlusion, {"window": 0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: window must be at least 1, got 0
"""

from __future__ import annotations

from typing import Any

from cnnviz.interpret import Method, OptionSpec
from cnnviz.zoo.core import CnnvizError, check_call, closest

SIMPLE = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _shown(method: Method) -> list[OptionSpec]:
    """The options a request may set: those JSON can carry (a callable or tensor option is Python only)."""
    return [spec for spec in method.options().values() if spec.choices is not None or spec.type in SIMPLE]


def option_fields(method: Method) -> list[dict[str, Any]]:
    """One description per option a request may set: name, JSON type, default, choices, declared range, its
    one-line help."""
    fields = []
    for spec in _shown(method):
        field: dict[str, Any] = {"name": spec.name, "default": spec.default if _jsonable(spec.default) else None,
                                 "nullable": spec.nullable, "help": spec.help}
        if spec.bounds is not None:
            field.update(type=SIMPLE[spec.type], range=spec.bounds.describe())
            field.update({end: value for end, value in (("minimum", spec.minimum), ("maximum", spec.maximum))
                          if value is not None})
        elif spec.choices is not None:
            field.update(type="string", choices=list(spec.choices))
        else:
            field.update(type=SIMPLE[spec.type])
        fields.append(field)
    return fields


def option_schemas(method: Method) -> dict[str, dict[str, Any]]:
    """Each option a request may set as a JSON-schema fragment (OpenAPI 3.1): type (with ``"null"`` where None
    is accepted), ``minimum``/``maximum`` (``exclusive...`` for an open end), ``enum``, ``default`` and
    ``description``, from the same descriptions as :func:`option_fields` and the CLI's flags.

    Example:
        >>> from cnnviz import interpret
        >>> option_schemas(interpret.get_method("occlusion"))["window"]["minimum"]
        1
    """
    schemas = {}
    for spec in _shown(method):
        kind = "string" if spec.bounds is None and spec.choices is not None else SIMPLE[spec.type]
        schema: dict[str, Any] = {"type": [kind, "null"] if spec.nullable else kind}
        bounds = spec.bounds
        if bounds is not None:
            for end, value, open_end in (("minimum", bounds.low, bounds.open_low),
                                         ("maximum", bounds.high, bounds.open_high)):
                if value is not None:
                    schema["exclusive" + end.capitalize() if open_end else end] = value
        if spec.choices is not None:
            schema["enum"] = list(spec.choices) + ([None] if spec.nullable else [])
        if _jsonable(spec.default):
            schema["default"] = spec.default
        if spec.help:
            schema["description"] = spec.help
        schemas[spec.name] = schema
    return schemas


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
