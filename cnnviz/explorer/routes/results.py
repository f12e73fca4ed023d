"""Files of results: an explanation's panel, parts, raw map and record; the maps of units, evidence and
patches."""

from __future__ import annotations

from starlette.responses import Response

from cnnviz.explorer import compute, drawing
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.errors import NotFound
from cnnviz.explorer.requests import MapFile, ResultFile
from cnnviz.explorer.state import Explorer

MEDIA = {"png": "image/png", "npy": "application/octet-stream", "json": "application/json"}
DOWNLOADS = ("panel.png", "map.npy", "record.json")


async def result_file(explorer: Explorer, ask: ResultFile) -> Response:
    """The panel.png, image.png, heat.png, colorbar.png, map.npy or record.json of an explanation (?download=1:
    as cnnviz explain names them)."""
    drawn, found = await compute.result_file(explorer, ask.key, ask.name)
    suffix = ask.name.split(".")[-1]
    download = {"Content-Disposition": f'attachment; filename="{found.record["png"][:-4]}.{suffix}"'} \
        if ask.name in DOWNLOADS and ask.download else {}
    return Response(drawn, media_type=MEDIA[suffix], headers=download)


async def map_file(explorer: Explorer, ask: MapFile) -> Response:
    """A unit's activation, evidence or patch map, or a filter."""
    values = explorer.results.get(ask.key)
    if values is None:
        raise NotFound(f"no map {ask.key}: maps are named by the unit and evidence answers")
    is_filter = values.ndim == 3  # a filter's (C, kh, kw) is drawn as a picture
    picture = drawing.image_png(values, side=96) if is_filter else drawing.map_png(values)
    return Response(picture, media_type="image/png")


ROUTES = [route("GET", "/api/results/{key}/{name}", result_file), route("GET", "/api/maps/{key}.png", map_file)]
