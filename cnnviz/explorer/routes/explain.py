"""Explanations: a map with its record and files, the same from two models, and its faithfulness curves."""

from __future__ import annotations

from cnnviz.explorer import compute
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.requests import Compare, Explain, Faithfulness
from cnnviz.explorer.state import Explorer


async def explain(explorer: Explorer, ask: Explain) -> JSONResponse:
    """An attribution map, its record and files."""
    key, found = await compute.explanation(explorer, ask)
    return JSONResponse({"key": key, "record": found.record, "files": compute.files(key)})


async def compare(explorer: Explorer, ask: Compare) -> JSONResponse:
    """The same explanation from two served models, each as /api/explain answers."""
    return JSONResponse({"results": await compute.comparison(explorer, ask)})


async def faithfulness(explorer: Explorer, ask: Faithfulness) -> JSONResponse:
    """Deletion/insertion curves and areas of an explanation."""
    return JSONResponse({"key": ask.key, **await compute.faithfulness(explorer, ask.key, ask.steps)})


ROUTES = [route("POST", "/api/explain", explain), route("POST", "/api/compare", compare),
          route("POST", "/api/faithfulness", faithfulness)]
