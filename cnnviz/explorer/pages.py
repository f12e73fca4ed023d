"""Server-rendered pages, one URL per view, from autoescaped Jinja2 templates. Each page gets its numbers
from the same functions as the JSON API, so a page and a script see the same results.

- ``/m/MODEL/image/IMAGE``: the image, its top classes and a class search;
- ``/m/MODEL/image/IMAGE/explain/METHOD?target=&layer=&options=``: maps side by side with an opacity
  slider, a numbered colour bar and the downloads;
- ``/compare/A/B/image/IMAGE/explain/METHOD?target=&layer_a=&layer_b=&options=``: two served models side by
  side on the same image and method;
- ``/m/MODEL/image/IMAGE/why?layer=&target=``: the channels with the most evidence, by units;
- ``/m/MODEL/layers?image=`` and ``/m/MODEL/layers/LAYER?image=``: the layer table and a layer's feature maps;
- ``/m/MODEL/units/LAYER/CHANNEL?image=``: a unit's page (its activation, activation maximization with cancel,
  its top patches of ``--data``);
- ``/m/MODEL/image/IMAGE/optimize/METHOD?target=&layer=&options=``: inversion, DeepDream or a PGD attack, live,
  with cancel.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from cnnviz import interpret
from cnnviz.explorer import api, drawing, work
from cnnviz.explorer.images import image_names
from cnnviz.explorer.optimize_jobs import HIDDEN, OPTIMIZATIONS, optimization, page_options
from cnnviz.explorer.options import check_options, option_fields
from cnnviz.explorer.state import Explorer, result_key

FEATURE_MAPS_SHOWN = 32


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    page = request.app.state.templates.get_template(template).render(
        models=list(explorer.models), images=image_names(), data=len(explorer.data) if explorer.data else 0,
        exported=False, patches=None, **context)
    return HTMLResponse(page)


async def home(request: Request) -> Response:
    explorer: Explorer = request.app.state.explorer
    return RedirectResponse(f"/m/{explorer.default_model}/image/{image_names()[0]}", status_code=303)


async def image_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    name = request.path_params["image"]
    probs = await api.image_probabilities(explorer, handle, name)
    return render(request, "image.html", model=handle.name, image=name, top=work.top_classes(handle, probs, 5),
                  classes=handle.classes or [], methods=[m.name for m in interpret.methods("attribution")],
                  layer=handle.default_layer or "", task=handle.config.task)


async def explain_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    query = request.query_params
    options = api.parse_json(query.get("options", "{}").encode(), what="options")
    fields = {"model": request.path_params["model"], "image": request.path_params["image"],
              "method": request.path_params["method"], "target": query.get("target") or None,
              "layer": query.get("layer") or None, "options": options,
              "region": query.get("region") or None, "box": query.get("box") or None}  # a dense model's target
    if isinstance(fields["target"], str) and fields["target"].isdigit():
        fields["target"] = int(fields["target"])
    key, found = await api.explanation(explorer, fields)
    method = explorer.method(fields["method"])
    check_options(method, options)
    return render(request, "explain.html", model=fields["model"], image=fields["image"], key=key,
                  record=found.record, method=method.name, options=json.dumps(options), values=options,
                  fields=option_fields(method), uses_layer=method.uses_layer,
                  layer=fields["layer"] or "", target=query.get("target", ""), region=query.get("region", ""),
                  box=query.get("box", ""))


async def compare_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    query = request.query_params
    a, b = request.path_params["a"], request.path_params["b"]
    target = query.get("target") or None
    fields = {"models": [a, b], "image": request.path_params["image"], "method": request.path_params["method"],
              "target": int(target) if target and target.isdigit() else target,
              "layers": [query.get("layer_a") or None, query.get("layer_b") or None],
              "options": api.parse_json(query.get("options", "{}").encode(), what="options")}
    results = await api.comparison(explorer, fields)
    return render(request, "compare.html", model=a, other=b, image=fields["image"], method=fields["method"],
                  results=results, methods=[m.name for m in interpret.methods("attribution")],
                  target=target or "", options=json.dumps(fields["options"]))


async def why_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    name = request.path_params["image"]
    layer = api.layer_of(handle, request.query_params.get("layer")) or handle.default_layer
    target = api.target_of(handle, request.query_params.get("target") or None)
    channels = await api.evidence_rows(explorer, handle, name, layer, target, 8)
    probs = await api.image_probabilities(explorer, handle, name)
    explained = int(probs.argmax()) if target is None else target
    return render(request, "why.html", model=handle.name, image=name, layer=layer, channels=channels,
                  target=handle.class_name(explained))


async def layers_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    name = request.query_params.get("image", image_names()[0])
    explorer.image(handle, name)
    return render(request, "layers.html", model=handle.name, image=name,
                  rows=await api.layer_rows(explorer, handle))


async def layer_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    layer = api.layer_of(handle, request.path_params["layer"])
    name = request.query_params.get("image", image_names()[0])
    batch = explorer.image(handle, name)
    maps, order = await explorer.queue(handle).run(lambda: work.layer_maps(handle, batch, layer, FEATURE_MAPS_SHOWN))
    channels = []
    for channel, values in zip(order, maps):
        key = result_key("unit", handle.name, name, layer, channel)
        explorer.results.put(key, values)
        channels.append({"channel": channel, "key": key, "max": float(values.max())})
    return render(request, "layer.html", model=handle.name, image=name, layer=layer, channels=channels)


async def unit_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    layer = api.layer_of(handle, request.path_params["layer"])
    channel = api.channel_of(request.path_params["channel"])
    name = request.query_params.get("image", image_names()[0])
    key, values = await api.unit_activation(explorer, handle, name, layer, channel)
    weights = await explorer.queue(handle).run(lambda: work.unit_filter(handle, layer, channel))
    filter_key = result_key("filter", handle.name, layer, channel) if weights is not None else None
    if filter_key:
        explorer.results.put(filter_key, weights)
    return render(request, "unit.html", model=handle.name, image=name, layer=layer, channel=channel,
                  picture_src=f"/m/{handle.name}/image/{quote(name, safe='')}/picture.png",
                  activation_src=f"/api/maps/{key}.png", mean=float(values.mean()), max=float(values.max()),
                  filter_src=f"/api/maps/{filter_key}.png" if filter_key else None,
                  body=json.dumps({"model": handle.name, "layer": layer, "channel": channel}))


async def optimize_page(request: Request) -> HTMLResponse:
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    name = request.path_params["image"]
    method = optimization(request.path_params["method"])
    query = request.query_params
    options = page_options(method, api.parse_json(query.get("options", "{}").encode(), what="options"))
    target = query.get("target") or None
    layer = api.layer_of(handle, query.get("layer"))
    api.target_of(handle, target)
    probs = await api.image_probabilities(explorer, handle, name)
    body = {"model": handle.name, "image": name, "method": method.name, "target": target, "layer": layer,
            "options": options}
    return render(request, "optimize.html", model=handle.name, image=name, method=method.name,
                  about=OPTIMIZATIONS[method.name], optimizations=OPTIMIZATIONS, options=json.dumps(options),
                  values=options, fields=[f for f in option_fields(method) if f["name"] not in HIDDEN],
                  target=target or "", layer=layer or "", default_layer=handle.default_layer or "",
                  classes=handle.classes or [], top=work.top_classes(handle, probs, 1)[0], body=json.dumps(body))


async def image_file(request: Request) -> Response:
    """The prepared image a page shows (a sample, a data item or an upload: never a path)."""
    explorer: Explorer = request.app.state.explorer
    handle = explorer.model(request.path_params["model"])
    batch = explorer.image(handle, request.path_params["image"])
    return Response(drawing.image_png(batch[0].cpu().numpy()), media_type="image/png")


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/m/{model}/image/{image}", image_page, methods=["GET"]),
    Route("/m/{model}/image/{image}/picture.png", image_file, methods=["GET"]),
    Route("/m/{model}/image/{image}/explain/{method}", explain_page, methods=["GET"]),
    Route("/m/{model}/image/{image}/why", why_page, methods=["GET"]),
    Route("/compare/{a}/{b}/image/{image}/explain/{method}", compare_page, methods=["GET"]),
    Route("/m/{model}/image/{image}/optimize/{method}", optimize_page, methods=["GET"]),
    Route("/m/{model}/layers", layers_page, methods=["GET"]),
    Route("/m/{model}/layers/{layer}", layer_page, methods=["GET"]),
    Route("/m/{model}/units/{layer}/{channel}", unit_page, methods=["GET"]),
]
