"""The OpenAPI 3.1 document served at ``/api/openapi.json``, made from the routes: an operation's parameters and
request body come from its handler's typed request (:mod:`~cnnviz.explorer.requests`), so every field a handler
can read is documented; a method's options come from its option description (:func:`option_schema`).

Example:
    >>> from cnnviz.explorer.routes import ROUTES
    >>> explain = document(ROUTES)["paths"]["/api/explain"]["post"]
    >>> body = explain["requestBody"]["content"]["application/json"]["schema"]
    >>> sorted(body["required"]), "region" in body["properties"]
    (['image', 'method'], True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from cnnviz.explorer.body import MAX_DEPTH, MAX_JSON_BYTES
from cnnviz.explorer.fields import Options
from cnnviz.explorer.images import MAX_UPLOAD_BYTES
from cnnviz.explorer.options import option_schemas
from cnnviz.explorer.typed import Ask, Param

ERROR = {"description": "refused: one line saying what was wrong",
         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
REFUSALS = {"400": ERROR, "401": ERROR, "404": ERROR, "413": ERROR}


def option_schema(method: Any) -> dict[str, Any]:
    """The JSON Schema of a method's options, from its option description (the one hook to it)."""
    return {"type": "object", "properties": option_schemas(method), "additionalProperties": False}


def component_name(method: Any) -> str:
    return "options-" + re.sub(r"[^A-Za-z0-9._-]", "_", method.name)


def field_schema(declared: Param, default: Any) -> dict[str, Any]:
    """A field's schema; a field that may be left out may also be null."""
    schema = {**declared.kind.schema(), "description": declared.doc}
    if not declared.required:
        if "type" in schema:
            schema["type"] = [*([schema["type"]] if isinstance(schema["type"], str) else schema["type"]), "null"]
        else:
            schema["oneOf"] = [*schema["oneOf"], {"type": "null"}]
    if default is not None:
        schema["default"] = list(default) if isinstance(default, tuple) else default
    return schema


def body_schema(ask: type[Ask], names: list[str], components: dict[str, Any]) -> dict[str, Any]:
    """The object schema of the body fields ``names``; a method's options documented per method."""
    params, defaults = ask.params(), ask.defaults()
    schema: dict[str, Any] = {"type": "object",
                              "properties": {name: field_schema(params[name], defaults[name]) for name in names},
                              "required": [name for name in names if params[name].required]}
    conditions = []
    for name in names:
        kind = params[name].kind
        if isinstance(kind, Options):
            for method in kind.methods():
                components[component_name(method)] = option_schema(method)
                conditions.append({"if": {"properties": {kind.by: {"const": method.name}}, "required": [kind.by]},
                                   "then": {"properties": {name: {"$ref": f"#/components/schemas/"
                                                                          f"{component_name(method)}"}}}})
    if conditions:
        schema["allOf"] = conditions
    return schema


def operation(route: Any, components: dict[str, Any]) -> dict[str, Any]:
    """One route's operation: its summary (the handler's docstring), parameters, body and answers."""
    ask: type[Ask] = route.endpoint.ask
    params = ask.params()
    defaults = ask.defaults()
    in_path = [name for name in params if name in route.param_convertors]
    rest = [name for name in params if name not in in_path]
    get = "GET" in route.methods
    op: dict[str, Any] = {"summary": " ".join((route.endpoint.handler.__doc__ or "").split()),
                          "tags": ["api" if route.path.startswith("/api/") else "pages"],
                          "responses": {"200": {"description": "OK"}, **REFUSALS}}
    parameters = [{"name": name, "in": "path", "required": True, "description": params[name].kind.what,
                   "schema": params[name].kind.schema()} for name in in_path]
    parameters += [{"name": name, "in": "query", "required": params[name].required, "description": params[name].doc,
                    "schema": field_schema(params[name], defaults[name])} for name in rest if get]
    if parameters:
        op["parameters"] = parameters
    if rest and not get:
        schema = body_schema(ask, rest, components)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema},
                                                           "multipart/form-data": {"schema": schema}}}
    return op


def document(routes: Iterable[Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 description of ``routes`` (those made by :func:`~cnnviz.explorer.endpoint.route`)."""
    components: dict[str, Any] = {"Error": {"type": "object", "properties": {"error": {"type": "string"}},
                                            "required": ["error"]}}
    paths: dict[str, Any] = {}
    for route in routes:
        if hasattr(getattr(route, "endpoint", None), "ask"):
            for method in sorted(route.methods - {"HEAD"}):
                paths.setdefault(route.path, {})[method.lower()] = operation(route, components)
    return {"openapi": "3.1.0",
            "info": {"title": "cnnviz explorer", "version": "1",
                     "description": "Explain a served model's decisions. JSON bodies up to "
                                    f"{MAX_JSON_BYTES:,} bytes, nested at most {MAX_DEPTH} deep; uploads up to "
                                    f"{MAX_UPLOAD_BYTES:,} bytes. With --token, send Authorization: Bearer TOKEN."},
            "paths": paths, "components": {"schemas": components}}
