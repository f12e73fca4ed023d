"""Predictions: a model's top classes on an image."""

from __future__ import annotations

from cnnviz.explorer import work
from cnnviz.explorer.compute import probabilities
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.requests import Predict
from cnnviz.explorer.state import Explorer


async def predict(explorer: Explorer, ask: Predict) -> JSONResponse:
    """Top-k classes."""
    handle = explorer.model(ask.model)
    probs = await probabilities(explorer, handle, ask.image)
    return JSONResponse({"model": handle.name, "image": ask.image, "top": work.top_classes(handle, probs, ask.top)})


ROUTES = [route("POST", "/api/predict", predict)]
