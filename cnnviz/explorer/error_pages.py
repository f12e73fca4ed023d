"""Refusals where a person asked for a page: the one line of :mod:`~cnnviz.explorer.errors` as a page in the
site's frame, with the way back (the model, the image, the model's layers, home); the API keeps its JSON.

Example:
    >>> is_page("GET", "/m/fashion_cnn/image/coffee/explain/gradcam"), is_page("GET", "/api/models")
    (True, False)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cnnviz.explorer.errors import one_line
from cnnviz.explorer.images import image_names
from cnnviz.explorer.templating import templates

TEMPLATES = templates()


def is_page(method: str, path: str) -> bool:
    """Whether a person's browser asked for a page there (not the API, a static file or a picture)."""
    return method in ("GET", "HEAD") and not path.startswith(("/api/", "/static/")) and not path.endswith(".png")


def refusal(request: Request, status: int, message: str) -> Response:
    """The refusal of ``request``: a page with the way back where a page was asked for, else one line of
    JSON."""
    if not is_page(request.method, request.url.path):
        return one_line(status, message)
    line = " ".join(message.split())
    page = TEMPLATES.get_template("error.html").render(status=status, message=line, **_way_back(request, line))
    return HTMLResponse(page, status_code=status)


def _way_back(request: Request, message: str) -> dict[str, Any]:
    """The links an error page offers: the model and image the URL names when they are served and not what
    the error is about, else the first served model and sample."""
    explorer = getattr(request.app.state, "explorer", None)
    served = list(explorer.models) if explorer is not None else []
    params = request.path_params
    asked = [params[name] for name in ("model", "a", "b") if name in params]
    model = next((name for name in asked if name in served), served[0] if served else "")
    image = params.get("image")
    own_image = image is not None and repr(image) not in message
    return {"models": served, "model": model, "image": image if own_image else image_names()[0],
            "image_page": own_image and request.url.path.rstrip("/") != f"/m/{model}/image/{image}",
            "layers": "layer" in message, "exported": False}
