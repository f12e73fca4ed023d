"""The API's OpenAPI document, written as data beside the routes it describes."""

from __future__ import annotations

from typing import Any

from cnnviz.explorer.images import MAX_UPLOAD_BYTES

_IMAGE = {"type": "string", "description": 'a sample ("chelsea"), "data:INDEX" of --data, or "upload:HASH" '
                                           "from /api/upload; or send the file as multipart field image"}
_ERROR = {"description": "bad input: one line saying what was wrong",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema},
                                          "multipart/form-data": {"schema": schema}}}


def _op(summary: str, *, body: dict[str, Any] | None = None, params: list[str] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}, "400": _ERROR,
                                                            "401": _ERROR, "404": _ERROR, "413": _ERROR}}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 description served at ``/api/openapi.json``."""
    model = {"type": "string", "description": "a served model (default: the first)"}
    target = {"type": ["integer", "string", "null"], "description": "class index or (part of) a class name; "
                                                                   "default: the predicted class"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "cnnviz explorer", "version": "1",
                 "description": "Explain a served model's decisions. Uploads up to "
                                f"{MAX_UPLOAD_BYTES:,} bytes. With --token, send Authorization: Bearer TOKEN."},
        "paths": {
            "/api/health": {"get": _op("liveness, cache size and compute queues")},
            "/api/models": {"get": _op("served models, sample images and attribution methods with their options")},
            "/api/models/{model}/layers": {"get": _op("the layer table", params=["model"])},
            "/api/models/{model}/units/{layer}/{channel}": {"get": _op(
                "one channel's activation on ?image=NAME", params=["model", "layer", "channel"])},
            "/api/models/{model}/units/{layer}/{channel}/patches": {"get": _op(
                "a unit's top-activating patches of --data (after /api/atlas)", params=["model", "layer", "channel"])},
            "/api/atlas": {"post": _op("start the atlas of a layer over --data (202 with the job; 200 when kept)",
                                       body=_body({"model": model, "layer": {"type": "string"}}, []))},
            "/api/predict": {"post": _op("top-k classes", body=_body(
                {"model": model, "image": _IMAGE, "top": {"type": "integer", "minimum": 1}}, ["image"]))},
            "/api/explain": {"post": _op("an attribution map, its record and files", body=_body(
                {"model": model, "image": _IMAGE, "method": {"type": "string"}, "target": target,
                 "layer": {"type": "string"}, "options": {"type": "object"}}, ["image", "method"]))},
            "/api/compare": {"post": _op("the same explanation from two served models, each as /api/explain answers",
                                         body=_body({"models": {"type": "array", "items": {"type": "string"},
                                                                "minItems": 2, "maxItems": 2},
                                                     "image": _IMAGE, "method": {"type": "string"}, "target": target,
                                                     "layers": {"type": "array"}, "options": {"type": "object"}},
                                                    ["models", "image", "method"]))},
            "/api/evidence": {"post": _op("channels with the most activation x gradient for the class", body=_body(
                {"model": model, "image": _IMAGE, "target": target, "layer": {"type": "string"},
                 "top": {"type": "integer", "minimum": 1}}, ["image"]))},
            "/api/faithfulness": {"post": _op("deletion/insertion curves and areas of an explanation", body=_body(
                {"key": {"type": "string", "description": "the key /api/explain answered"},
                 "steps": {"type": "integer", "minimum": 2}}, ["key"]))},
            "/api/upload": {"post": _op("keep an uploaded image; answers its name", body=_body(
                {"image": {"type": "string", "format": "binary"}}, ["image"]))},
            "/api/results/{key}/{name}": {"get": _op(
                "panel.png, image.png, heat.png, colorbar.png, map.npy or record.json of an explanation "
                "(?download=1: as cnnviz explain names them)", params=["key", "name"])},
            "/api/maps/{key}.png": {"get": _op("a unit's activation or evidence map", params=["key"])},
            "/api/jobs": {"post": _op("start activation maximization of a unit (202)", body=_body(
                {"model": model, "layer": {"type": "string"}, "channel": {"type": "integer", "minimum": 0},
                 "steps": {"type": "integer", "minimum": 1}}, ["channel"]))},
            "/api/jobs/{job}": {"get": _op("a job's state, step and picture", params=["job"])},
            "/api/jobs/{job}/cancel": {"post": _op("stop a job at its next round", params=["job"])},
            "/api/jobs/{job}/image.png": {"get": _op("a job's latest picture", params=["job"])},
            "/api/jobs/{job}/image.npy": {"get": _op("a job's latest picture as float values (C, H, W)",
                                                     params=["job"])},
            "/api/optimize": {"post": _op("start inversion (invert), DeepDream (dream) or a PGD attack (pgd) on an "
                                          "image (202; poll /api/jobs/{job})", body=_body(
                {"model": model, "image": _IMAGE, "method": {"type": "string", "enum": ["invert", "dream", "pgd"]},
                 "target": target, "layer": {"type": "string"}, "options": {"type": "object"}},
                ["image", "method"]))},
        },
        "components": {"schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}},
                                             "required": ["error"]}}},
    }
