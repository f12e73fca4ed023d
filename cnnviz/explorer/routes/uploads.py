"""Uploads: an image kept (downscaled to what the served models need, on disk) under the name later requests use
for it."""

from __future__ import annotations

from cnnviz.explorer.endpoint import route
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.requests import Uploaded
from cnnviz.explorer.state import Explorer


async def upload(explorer: Explorer, ask: Uploaded) -> JSONResponse:
    """Keep an uploaded image; answers its name, the original's size and the size kept (``[width, height]``)."""
    kept = explorer.kept(ask.image)
    return JSONResponse({"image": kept.name, "size": list(kept.size), "kept": list(kept.kept)})


ROUTES = [route("POST", "/api/upload", upload)]
