"""Uploads: an image kept under the name later requests use for it."""

from __future__ import annotations

from starlette.responses import JSONResponse

from cnnviz.explorer.endpoint import route
from cnnviz.explorer.requests import Uploaded
from cnnviz.explorer.state import Explorer


async def upload(explorer: Explorer, ask: Uploaded) -> JSONResponse:
    """Keep an uploaded image; answers its name."""
    return JSONResponse({"image": ask.image})


ROUTES = [route("POST", "/api/upload", upload)]
