"""The served models: liveness, what is served, a model's layer table."""

from __future__ import annotations

from cnnviz import interpret
from cnnviz.explorer.compute import layer_rows
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.images import image_names
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.options import option_fields
from cnnviz.explorer.requests import Served
from cnnviz.explorer.state import Explorer
from cnnviz.explorer.typed import Ask


async def health(explorer: Explorer, ask: Ask) -> JSONResponse:
    """Liveness, cache size and compute queues."""
    return JSONResponse({"status": "ok", "models": list(explorer.models), "cached_results": len(explorer.results),
                         "cache_bytes": explorer.results.size, "cache_limit_bytes": explorer.results.max_bytes,
                         "queues": {q.device: {"running": q.running, "most_at_once": q.most_at_once}
                                    for q in explorer.queues.all()}})


async def models(explorer: Explorer, ask: Ask) -> JSONResponse:
    """Served models, sample images and attribution methods with their options."""
    return JSONResponse({"default": explorer.default_model, "images": image_names(),
                         "data": len(explorer.data) if explorer.data is not None else None,
                         "methods": [{"name": m.name, "group": m.group, "summary": m.summary,
                                      "uses_layer": m.uses_layer, "options": option_fields(m)}
                                     for m in interpret.methods("attribution")],
                         "models": [{"name": name, "input_size": h.input_size, "channels": h.in_channels,
                                     "classes": h.classes or [], "default_layer": h.default_layer,
                                     "device": str(h.device)} for name, h in explorer.models.items()]})


async def layers(explorer: Explorer, ask: Served) -> JSONResponse:
    """The layer table."""
    handle = explorer.model(ask.model)
    return JSONResponse({"model": handle.name, "default_layer": handle.default_layer,
                         "layers": await layer_rows(explorer, handle)})


ROUTES = [route("GET", "/api/health", health), route("GET", "/api/models", models),
          route("GET", "/api/models/{model}/layers", layers)]
