"""How the explorer says no: a refusal is one line of JSON, ``{"error": "..."}``, with the status its kind of
error carries (a name in the URL that names nothing: 404; a body over its limit: 413; any other bad input:
400); where a person asked for a page, the same line is a page in the site's frame with the way back (home, the
model, the image, the model's layers).

Example:
    >>> status_of(NotFound("no model 'x' is served")), status_of(TooLarge("too big")), status_of(CnnvizError("no"))
    (404, 413, 400)
    >>> one_line(400, "bad\\n input").body
    b'{"error":"bad input"}'
    >>> is_page("GET", "/m/fashion_cnn/image/coffee/explain/gradcam"), is_page("GET", "/api/models")
    (True, False)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from cnnviz.explorer.templating import templates
from cnnviz.zoo.core import CnnvizError

TEMPLATES = templates()


class NotFound(CnnvizError):
    """A name in the URL (or a key) that names nothing served or kept (answered with 404)."""


class TooLarge(CnnvizError):
    """An upload or request over the declared size limit (answered with 413)."""


def status_of(exc: CnnvizError) -> int:
    """The HTTP status a refusal is answered with."""
    return 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 400


def one_line(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with its whitespace folded to one line."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


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
    from cnnviz.explorer.images import image_names  # images.py says its own refusals with this module's errors

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
