"""The JSON API (documented at ``/api/openapi.json``), which the pages use too. Every handler checks its
input before queueing any torch work; bad input raises :class:`~zoo.errors.CnnvizError`, answered as a 4xx
``{"error": "..."}`` by :mod:`explorer.app`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import torch
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cnnviz import interpret
from cnnviz.explorer import drawing, work
from cnnviz.explorer.images import MAX_UPLOAD_BYTES, TooLarge, image_names
from cnnviz.explorer.jobs import Job, UnitJob
from cnnviz.explorer.optimize_jobs import OptimizeJob
from cnnviz.explorer.options import check_options, option_fields
from cnnviz.explorer.state import Explorer, NotFound, result_key
from cnnviz.interpret.evaluate import CurveSteps
from cnnviz.zoo.core import Between, CnnvizError, declared
from cnnviz.zoo.handle import ModelHandle

RESULT_FILES = {"panel.png", "image.png", "heat.png", "colorbar.png", "map.npy", "record.json"}
KEY = re.compile(r"[0-9a-f]{32}")
TOP = Between(1, 1000)
CURVE_STEPS = declared(CurveSteps)[1]  # the range cnnviz evaluate --curve-steps takes


def state(request: Request) -> Explorer:
    return request.app.state.explorer


async def body(request: Request) -> dict[str, Any]:
    """The request's fields: a JSON object, or a multipart form whose ``image`` may be a file upload."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + 65536:
        raise TooLarge(f"the request is {int(declared):,} bytes, more than the {MAX_UPLOAD_BYTES:,} accepted")
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=16, max_part_size=MAX_UPLOAD_BYTES + 1) as form:
            fields: dict[str, Any] = {}
            for name, value in form.multi_items():
                if hasattr(value, "read"):
                    content = await value.read()
                    fields[name] = state(request).upload(content, value.filename or "")
                else:
                    fields[name] = value
        for name in ("options",):
            if isinstance(fields.get(name), str):
                fields[name] = parse_json(fields[name].encode(), what=name)
        if isinstance(fields.get("target"), str) and fields["target"].lstrip("-").isdigit():
            fields["target"] = int(fields["target"])
        return fields
    raw = await request.body()
    if len(raw) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"the request is {len(raw):,} bytes, more than the {MAX_UPLOAD_BYTES:,} accepted")
    found = parse_json(raw, what="the body")
    if not isinstance(found, dict):
        raise CnnvizError(f"the body must be a JSON object of fields, got {type(found).__name__}")
    return found


def parse_json(raw: bytes, *, what: str) -> Any:
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CnnvizError(f"{what} is not valid JSON ({str(exc).splitlines()[0]})") from None


def target_of(handle: ModelHandle, target: Any) -> int | None:
    """A class index from an index or (part of) a class name; None: the predicted class."""
    if target is None or target == "":
        return None
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise CnnvizError(f"target must be a class index or name, got {target!r}")
    return interpret.class_index(handle, target)


def region_of(region: Any) -> tuple[float, ...] | None:
    """A region (segmentation) or box of class ``target`` (detector): ``x0,y0,x1,y1`` as text or four numbers."""
    if region is None or region == "":
        return None
    parts = region.split(",") if isinstance(region, str) else region
    try:
        values = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4:
        raise CnnvizError(f"region is four numbers x0,y0,x1,y1 in pixels of the prepared image, got {region!r}")
    return values


def box_of(box: Any) -> int | None:
    """A detection number, from 1 (best first), as ``cnnviz explain --box`` takes it."""
    if box is None or box == "":
        return None
    if isinstance(box, str) and box.strip().isdigit():
        box = int(box)
    if isinstance(box, bool) or not isinstance(box, int) or box < 1:
        raise CnnvizError(f"box is a detection number from 1 (best first), got {box!r}")
    return box


def layer_of(handle: ModelHandle, layer: Any) -> str | None:
    if layer is None or layer == "":
        return None
    if not isinstance(layer, str):
        raise CnnvizError(f"layer must be a dotted layer name, got {layer!r}")
    handle.layer(layer)
    return layer


async def health(request: Request) -> JSONResponse:
    explorer = state(request)
    return JSONResponse({"status": "ok", "models": list(explorer.models), "cached_results": len(explorer.results),
                         "cache_bytes": explorer.results.size, "cache_limit_bytes": explorer.results.max_bytes,
                         "queues": {q.device: {"running": q.running, "most_at_once": q.most_at_once}
                                    for q in explorer.queues.all()}})


async def models(request: Request) -> JSONResponse:
    explorer = state(request)
    return JSONResponse({"default": explorer.default_model, "images": image_names(),
                         "data": len(explorer.data) if explorer.data is not None else None,
                         "methods": [{"name": m.name, "group": m.group, "summary": m.summary,
                                      "uses_layer": m.uses_layer, "options": option_fields(m)}
                                     for m in interpret.methods("attribution")],
                         "models": [{"name": name, "input_size": h.input_size, "channels": h.in_channels,
                                     "classes": h.classes or [], "default_layer": h.default_layer,
                                     "device": str(h.device)} for name, h in explorer.models.items()]})


async def layer_rows(explorer: Explorer, handle: ModelHandle) -> list[dict[str, Any]]:
    """The layer table of a model (computed once, then cached)."""
    key = f"layers:{handle.name}"
    rows = explorer.results.get(key)
    if rows is None:
        table = await explorer.queue(handle).run(lambda: interpret.layer_table(handle))
        rows = [{"name": r.name, "type": r.type, "depth": r.depth, "output_shape": list(r.output_shape or []),
                 "calls": r.calls, "params": r.params} for r in table]
        explorer.results.put(key, rows)
    return rows


async def layers(request: Request) -> JSONResponse:
    explorer = state(request)
    handle = explorer.model(request.path_params["model"])
    return JSONResponse({"model": handle.name, "default_layer": handle.default_layer,
                         "layers": await layer_rows(explorer, handle)})


async def predict(request: Request) -> JSONResponse:
    fields = await body(request)
    explorer = state(request)
    handle = explorer.model(fields.get("model", explorer.default_model))
    top = TOP.check("top", fields.get("top", 5), int)
    name = fields.get("image")
    probs = await image_probabilities(explorer, handle, name)
    return JSONResponse({"model": handle.name, "image": name, "top": work.top_classes(handle, probs, top)})


async def image_probabilities(explorer: Explorer, handle: ModelHandle, name: Any) -> torch.Tensor:
    """The model's class probabilities on an image (computed once per model and image, then cached)."""
    batch = explorer.image(handle, name)
    key = f"probabilities:{handle.name}:{name}"
    probs = explorer.results.get(key)
    if probs is None:
        probs = await explorer.queue(handle).run(lambda: work.probabilities(handle, batch))
        explorer.results.put(key, probs)
    return probs


async def explanation(explorer: Explorer, fields: dict[str, Any]) -> tuple[str, work.Explanation]:
    """Check an explain request, then compute it on the queue, or take it from the cache."""
    handle = explorer.model(fields.get("model", explorer.default_model))
    method = explorer.method(fields.get("method"))
    target = target_of(handle, fields.get("target"))
    layer = layer_of(handle, fields.get("layer"))
    options = check_options(method, fields.get("options"))
    name = fields.get("image")
    batch = explorer.image(handle, name)
    region, box = region_of(fields.get("region")), box_of(fields.get("box"))
    key = result_key("explain", handle.name, name, method.name, target, layer if method.uses_layer else None,
                     options, *([region, box] if region is not None or box is not None else []))
    found = explorer.results.get(key)
    if found is None and (handle.config.task != "classification" or region is not None or box is not None):
        stem = f"{name}-{method.name}".replace(":", "_").replace("/", "_")
        found = await explorer.queue(handle).run(
            lambda: work.explain_dense(handle, method, batch, str(name), target, region, box, layer, options, stem))
        explorer.results.put(key, found)
    if found is None:
        stem = f"{name}-{method.name}".replace(":", "_").replace("/", "_")
        probs = await image_probabilities(explorer, handle, name)
        found = await explorer.queue(handle).run(
            lambda: work.explain(handle, method, batch, probs, str(name), target, layer, options, stem))
        explorer.results.put(key, found)
    return key, found


async def explain(request: Request) -> JSONResponse:
    key, found = await explanation(state(request), await body(request))
    return JSONResponse({"key": key, "record": found.record,
                         "files": {name: f"/api/results/{key}/{name}" for name in sorted(RESULT_FILES)}})


async def comparison(explorer: Explorer, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The same explain request (image, method, target, options) to each of two served models; each answer is the
    one /api/explain gives that model (``layers``: one layer per model, or none for their defaults)."""
    names, layers = fields.get("models"), fields.get("layers") or [None, None]
    if not isinstance(names, list) or len(names) != 2:
        raise CnnvizError("models must be a list of two served models to compare, such as [\"a\", \"b\"]")
    if not isinstance(layers, list) or len(layers) != 2:
        raise CnnvizError("layers must be a list of two layer names (or nulls), one per model")
    for name in names:
        explorer.model(name)
    answers = []
    for name, layer in zip(names, layers):
        key, found = await explanation(explorer, {**fields, "model": name, "layer": layer})
        answers.append({"model": name, "key": key, "record": found.record,
                        "files": {file: f"/api/results/{key}/{file}" for file in sorted(RESULT_FILES)}})
    return answers


async def compare(request: Request) -> JSONResponse:
    return JSONResponse({"results": await comparison(state(request), await body(request))})


async def faithfulness(request: Request) -> JSONResponse:
    """Deletion/insertion curves and their areas of an explanation (by its key), computed on request."""
    fields = await body(request)
    explorer = state(request)
    key = fields.get("key")
    steps = CURVE_STEPS.check("steps", fields.get("steps", 16), int)
    found: work.Explanation | None = explorer.results.get(key) if isinstance(key, str) and KEY.fullmatch(key) else None
    if found is None:
        raise NotFound(f"no explanation {key!r} is kept: ask /api/explain first and pass its key")
    handle = explorer.model(found.record["model"])
    scores_key = result_key("faithfulness", key, steps)
    scores = explorer.results.get(scores_key)
    if scores is None:
        scores = await explorer.queue(handle).run(lambda: work.faithfulness(handle, found, steps))
        explorer.results.put(scores_key, scores)
    return JSONResponse({"key": key, **scores})


async def result_file(request: Request) -> Response:
    """A file of an explanation: the panel, its parts, the raw map or the record."""
    key, name = request.path_params["key"], request.path_params["name"]
    if not KEY.fullmatch(key) or name not in RESULT_FILES:
        raise NotFound(f"no result file {key}/{name}: results are /api/results/KEY/" + "|".join(sorted(RESULT_FILES)))
    explorer = state(request)
    found: work.Explanation | None = explorer.results.get(key)
    if found is None:
        raise NotFound(f"result {key} is no longer kept: ask /api/explain again")
    drawn = explorer.results.get(f"{key}/{name}")
    if drawn is None:
        drawn = {"panel.png": lambda: drawing.panel_png(found.image, found.flat, found.title, found.marked),
                 "image.png": lambda: drawing.image_png(found.image) if found.marked is None
                 else drawing.marked_png(found.marked),
                 "heat.png": lambda: drawing.heat_png(found.image, found.flat),
                 "colorbar.png": lambda: drawing.colorbar_png(found.flat),
                 "map.npy": lambda: drawing.npy(found.raw),
                 "record.json": lambda: json.dumps(found.record, indent=2).encode()}[name]()
        explorer.results.put(f"{key}/{name}", drawn)
    media = {"png": "image/png", "npy": "application/octet-stream", "json": "application/json"}[name.split(".")[-1]]
    download = {"Content-Disposition": f'attachment; filename="{found.record["png"][:-4]}.{name.split(".")[-1]}"'} \
        if name in ("panel.png", "map.npy", "record.json") and request.query_params.get("download") else {}
    return Response(drawn, media_type=media, headers=download)


async def unit(request: Request) -> JSONResponse:
    """One channel of a layer on an image: its activation map's statistics and picture."""
    explorer = state(request)
    handle = explorer.model(request.path_params["model"])
    layer = layer_of(handle, request.path_params["layer"])
    channel = channel_of(request.path_params["channel"])
    name = request.query_params.get("image", "chelsea")
    key, values = await unit_activation(explorer, handle, name, layer, channel)
    return JSONResponse({"model": handle.name, "layer": layer, "channel": channel, "image": name,
                         "activation": {"mean": float(values.mean()), "max": float(values.max()),
                                        "shape": list(values.shape)},
                         "map": f"/api/maps/{key}.png"})


async def unit_activation(explorer: Explorer, handle: ModelHandle, name: Any, layer: str,
                          channel: int) -> tuple[str, np.ndarray]:
    """A channel's activation map on an image (cached), with the key its picture is served under."""
    batch = explorer.image(handle, name)
    key = result_key("unit", handle.name, name, layer, channel)
    values = explorer.results.get(key)
    if values is None:
        values = await explorer.queue(handle).run(lambda: work.unit_activation(handle, batch, layer, channel))
        explorer.results.put(key, values)
    return key, values


async def evidence_rows(explorer: Explorer, handle: ModelHandle, name: Any, layer: str, target: int | None,
                        top: int) -> list[dict[str, Any]]:
    """The ``top`` channels with the most evidence, each with the key its evidence map is served under."""
    batch = explorer.image(handle, name)
    rows = await explorer.queue(handle).run(lambda: work.evidence(handle, batch, target, layer, top))
    channels = []
    for channel, total, values in rows:
        key = result_key("evidence", handle.name, name, layer, target, channel)
        explorer.results.put(key, values)
        channels.append({"channel": channel, "evidence": total, "key": key})
    return channels


def channel_of(text: str) -> int:
    if not text.isdigit():
        raise CnnvizError(f"a channel is a number, got {text!r}")
    return int(text)


async def evidence(request: Request) -> JSONResponse:
    """The channels of a layer carrying the most evidence for the class (activation x gradient)."""
    fields = await body(request)
    explorer = state(request)
    handle = explorer.model(fields.get("model", explorer.default_model))
    layer = layer_of(handle, fields.get("layer")) or handle.default_layer
    target = target_of(handle, fields.get("target"))
    top = TOP.check("top", fields.get("top", 8), int)
    name = fields.get("image")
    channels = [{"channel": row["channel"], "evidence": row["evidence"], "map": f"/api/maps/{row['key']}.png",
                 "unit": f"/api/models/{handle.name}/units/{layer}/{row['channel']}?image={name}"}
                for row in await evidence_rows(explorer, handle, name, layer, target, top)]
    return JSONResponse({"model": handle.name, "image": name, "layer": layer, "target": target,
                         "channels": channels})


async def map_file(request: Request) -> Response:
    key = request.path_params["key"]
    values = state(request).results.get(key) if KEY.fullmatch(key) else None
    if values is None:
        raise NotFound(f"no map {key}: maps are named by the unit and evidence answers")
    picture = drawing.image_png(values, side=96) if values.ndim == 3 else drawing.map_png(values)  # a filter: (C, kh, kw)
    return Response(picture, media_type="image/png")


async def start_job(request: Request) -> JSONResponse:
    fields = await body(request)
    explorer = state(request)
    handle = explorer.model(fields.get("model", explorer.default_model))
    layer = layer_of(handle, fields.get("layer")) or handle.default_layer
    channel = fields.get("channel")
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise CnnvizError(f"channel must be a channel number, got {channel!r}")
    job = UnitJob(handle, layer, channel, steps=fields.get("steps", 128), round_steps=fields.get("round_steps", 16))
    explorer.start(job, handle)
    return JSONResponse(job.status(), status_code=202)


async def start_optimization(request: Request) -> JSONResponse:
    """Start inversion, DeepDream or an attack on an image as a job (202); poll /api/jobs/{id}."""
    fields = await body(request)
    explorer = state(request)
    handle = explorer.model(fields.get("model", explorer.default_model))
    target = target_of(handle, fields.get("target"))
    layer = layer_of(handle, fields.get("layer"))
    batch = explorer.image(handle, fields.get("image"))
    job = OptimizeJob(handle, fields.get("method"), batch, target, layer, fields.get("options"))
    explorer.start(job, handle)
    return JSONResponse(job.status(), status_code=202)


def job_of(request: Request) -> Job:
    job = state(request).jobs.get(request.path_params["job"])
    if job is None:
        raise NotFound(f"no job {request.path_params['job']!r}")
    return job


async def job_status(request: Request) -> JSONResponse:
    return JSONResponse(job_of(request).status())


async def cancel_job(request: Request) -> JSONResponse:
    job = job_of(request)
    job.cancel()
    return JSONResponse(job.status())


async def job_image(request: Request) -> Response:
    """A job's latest picture: PNG, or NPY (the float values, as the Python API returns them)."""
    job = job_of(request)
    image = job.image
    if image is None:
        raise NotFound("the job has no picture yet")
    if request.url.path.endswith(".npy"):
        return Response(drawing.npy(image), media_type="application/octet-stream")
    return Response(drawing.image_png(image), media_type="image/png")


async def start_atlas(request: Request) -> JSONResponse:
    """Start (or find) the atlas of a layer over the data set; answers the job's status, or done at once when
    the atlas is already kept in the cache folder."""
    fields = await body(request)
    explorer = state(request)
    handle = explorer.model(fields.get("model", explorer.default_model))
    layer = layer_of(handle, fields.get("layer")) or handle.default_layer
    job = explorer.atlas_job(handle, layer)
    if job is None:
        return JSONResponse({"kind": "atlas", "state": "done", "model": handle.name, "layer": layer,
                             "kept": True})
    return JSONResponse({**job.status(), "kept": False}, status_code=202)


async def unit_patches(explorer: Explorer, handle: ModelHandle, layer: str, channel: int) -> list[dict[str, Any]]:
    """The channel's top-activating patches of the data (from its layer's atlas), each with the key its picture
    is served under."""
    atlas = explorer.atlas(handle, layer)
    if atlas is None:
        raise NotFound(f"the atlas of {layer!r} is not computed yet: POST /api/atlas with its layer, then wait for "
                       "the job")
    if not 0 <= channel < atlas.channels:
        raise CnnvizError(f"layer {layer!r} has channels 0 to {atlas.channels - 1}, not {channel}")
    key = result_key("patches", handle.name, explorer.atlas_path(handle, layer).name, channel)
    rows = explorer.results.get(key)
    if rows is None:
        example = await explorer.queue(handle).run(
            lambda: next(interpret.inside.channel_examples(handle, atlas, explorer.data, [channel])))
        rows = []
        for rank, (patch, box) in enumerate(zip(example.top_patches, example.top_boxes)):
            index = int(atlas.top_indices[channel, rank])
            picture_key = result_key("patch", key, rank)
            explorer.results.put(picture_key, patch.numpy())
            rows.append({"rank": rank, "index": index, "item": f"data:{index}",
                         "activation": float(atlas.top_values[channel, rank]), "box": list(box),
                         "map": f"/api/maps/{picture_key}.png"})
        explorer.results.put(key, rows)
    return rows


async def patches(request: Request) -> JSONResponse:
    """A unit's top-activating patches of the data set, once its layer's atlas is computed."""
    explorer = state(request)
    handle = explorer.model(request.path_params["model"])
    layer = layer_of(handle, request.path_params["layer"])
    channel = channel_of(request.path_params["channel"])
    return JSONResponse({"model": handle.name, "layer": layer, "channel": channel,
                         "patches": await unit_patches(explorer, handle, layer, channel)})


async def upload(request: Request) -> JSONResponse:
    """Keep an uploaded image; answer the name later requests use for it."""
    fields = await body(request)
    name = fields.get("image")
    if not isinstance(name, str) or not name.startswith("upload:"):
        raise CnnvizError("send the image as a multipart file field named image")
    return JSONResponse({"image": name})


ROUTES = [
    Route("/api/health", health, methods=["GET"]),
    Route("/api/models", models, methods=["GET"]),
    Route("/api/models/{model}/layers", layers, methods=["GET"]),
    Route("/api/models/{model}/units/{layer}/{channel}", unit, methods=["GET"]),
    Route("/api/models/{model}/units/{layer}/{channel}/patches", patches, methods=["GET"]),
    Route("/api/atlas", start_atlas, methods=["POST"]),
    Route("/api/predict", predict, methods=["POST"]),
    Route("/api/explain", explain, methods=["POST"]),
    Route("/api/evidence", evidence, methods=["POST"]),
    Route("/api/compare", compare, methods=["POST"]),
    Route("/api/faithfulness", faithfulness, methods=["POST"]),
    Route("/api/upload", upload, methods=["POST"]),
    Route("/api/results/{key}/{name}", result_file, methods=["GET"]),
    Route("/api/maps/{key}.png", map_file, methods=["GET"]),
    Route("/api/jobs", start_job, methods=["POST"]),
    Route("/api/jobs/{job}", job_status, methods=["GET"]),
    Route("/api/jobs/{job}/cancel", cancel_job, methods=["POST"]),
    Route("/api/jobs/{job}/image.png", job_image, methods=["GET"]),
    Route("/api/jobs/{job}/image.npy", job_image, methods=["GET"]),
    Route("/api/optimize", start_optimization, methods=["POST"]),
]
