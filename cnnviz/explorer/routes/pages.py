"""Server-rendered pages, one URL per view, from autoescaped Jinja2 templates. Each page gets its numbers
from the same functions as the JSON API (:mod:`~cnnviz.explorer.compute`) and reads the same typed requests,
so a page and a script see the same results.

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

from starlette.responses import HTMLResponse, RedirectResponse, Response

from cnnviz import interpret
from cnnviz.interpret.views import pixels
from cnnviz.zoo.data import image_name
from cnnviz.zoo.handle import ModelHandle
from cnnviz.explorer import compute, drawing, work
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.layer_groups import skippable, stages
from cnnviz.explorer.images import image_names
from cnnviz.explorer.optimize_jobs import HIDDEN, OPTIMIZATIONS, optimization, page_options, planned_cost
from cnnviz.explorer.options import option_fields
from cnnviz.explorer.requests import (Browsed, Compare, ComparePage, Evidence, Explain, LayerPage, Optimize,
                                      Pictured, Unit)
from cnnviz.explorer.routes.units import scan_offer
from cnnviz.explorer.state import Explorer, result_key
from cnnviz.explorer.templating import templates
from cnnviz.explorer.typed import Ask

FEATURE_MAPS_SHOWN = 32
DATA_ITEMS_SHOWN = 200  # the data set's items the image list offers
TEMPLATES = templates()
GROUPS = {"cams": "class activation maps (a layer's evidence)", "gradients": "gradients and relevance",
          "perturbation": "perturbation (hide parts, watch the score)", "captum": "captum's implementations"}


def method_groups() -> list[tuple[str, list[interpret.Method]]]:
    """The attribution methods by kind (:data:`GROUPS` names the kinds), in the registry's order.

    Example:
        >>> groups = dict(method_groups())
        >>> [m.name for m in groups[GROUPS["cams"]]][:2]
        ['gradcam', 'guided_gradcam']
    """
    grouped: dict[str, list[interpret.Method]] = {}
    for method in interpret.methods("attribution"):
        grouped.setdefault(GROUPS.get(method.group, method.group or "other"), []).append(method)
    return list(grouped.items())


def render(explorer: Explorer, template: str, **context: Any) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(
        models=list(explorer.models), images=image_names(), data=len(explorer.data) if explorer.data else 0,
        exported=False, patches=None, **context)
    return HTMLResponse(page)


def text(value: Any) -> str:
    """A field's value as the page's form shows it (a region as ``x0,y0,x1,y1``)."""
    if value is None:
        return ""
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def data_items(explorer: Explorer, handle: ModelHandle) -> list[tuple[str, str]]:
    """The first :data:`DATA_ITEMS_SHOWN` items of ``--data`` as the image list offers them (``data:I`` and its
    label), where the data fit the model: a labelled data set whose class names are the model's, or images
    without labels (a folder)."""
    data = explorer.data
    classes = getattr(data, "classes", None)
    if data is None or (classes and list(classes) != list(handle.classes or [])):
        return []
    return [(f"data:{i}", image_name(data, i)) for i in range(min(len(data), DATA_ITEMS_SHOWN))]


async def home(explorer: Explorer, ask: Ask) -> Response:
    """The first served model on the first sample."""
    return RedirectResponse(f"/m/{explorer.default_model}/image/{image_names()[0]}", status_code=303)


async def image_page(explorer: Explorer, ask: Pictured) -> HTMLResponse:
    """The image, its top classes and a class search."""
    handle = explorer.model(ask.model)
    probs = await compute.probabilities(explorer, handle, ask.image)
    return render(explorer, "image.html", model=handle.name, image=ask.image, items=data_items(explorer, handle),
                  top=work.top_classes(handle, probs, 5), classes=handle.classes or [],
                  groups=method_groups(), layer=handle.default_layer or "",
                  task=handle.config.task)


async def explain_page(explorer: Explorer, ask: Explain) -> HTMLResponse:
    """Maps side by side with an opacity slider, a numbered colour bar and the downloads."""
    key, found = await compute.explanation(explorer, ask)
    method = explorer.method(ask.method)
    options = ask.options or {}
    return render(explorer, "explain.html", model=ask.model, image=ask.image, key=key, record=found.record,
                  method=method.name, summary=method.summary, groups=method_groups(), options=json.dumps(options),
                  signed=pixels.is_signed(found.flat),
                  values=options, fields=option_fields(method),
                  uses_layer=method.uses_layer, layer=text(ask.layer), target=text(ask.target),
                  region=text(ask.region), box=text(ask.box))


async def compare_page(explorer: Explorer, ask: ComparePage) -> HTMLResponse:
    """Two served models side by side on the same image and method."""
    results = await compute.comparison(explorer, Compare(**ask.explaining(), models=(ask.a, ask.b),
                                                         layers=(ask.layer_a, ask.layer_b)))
    return render(explorer, "compare.html", model=ask.a, other=ask.b, image=ask.image, method=ask.method,
                  results=results, methods=[m.name for m in interpret.methods("attribution")],
                  target=text(ask.target), options=json.dumps(ask.options or {}))


async def why_page(explorer: Explorer, ask: Evidence) -> HTMLResponse:
    """The channels with the most evidence for the class, by units."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer) or handle.default_layer
    target = explorer.target(handle, ask.target)
    channels = await compute.evidence_rows(explorer, handle, ask.image, layer, target, ask.top)
    probs = await compute.probabilities(explorer, handle, ask.image)
    explained = int(probs.argmax()) if target is None else target
    kept = await compute.dictionary(explorer, handle, layer, [c["channel"] for c in channels], patches=False)
    units = {unit["channel"]: unit for unit in kept["units"]}
    channels = [{**c, "picture": units[c["channel"]]["picture"], "words": units[c["channel"]]["words"]}
                for c in channels]
    return render(explorer, "why.html", model=handle.name, image=ask.image, layer=layer, channels=channels,
                  target=handle.class_name(explained), sheet_state=kept["state"])


async def layers_page(explorer: Explorer, ask: Browsed) -> HTMLResponse:
    """The layer table by stage, with an overview of the stages and their shapes; BatchNorm and Identity
    hidden until asked for."""
    handle = explorer.model(ask.model)
    await explorer.image(handle, ask.image)
    rows = [{**row, "skippable": skippable(row)} for row in await compute.layer_rows(explorer, handle)]
    return render(explorer, "layers.html", model=handle.name, image=ask.image, groups=stages(rows),
                  input_shape=f"{handle.in_channels} × {handle.input_size} × {handle.input_size}",
                  hidden=sum(row["skippable"] for row in rows if row["name"]))


async def layer_page(explorer: Explorer, ask: LayerPage) -> HTMLResponse:
    """A layer's strongest feature maps: the top :data:`FEATURE_MAPS_SHOWN` of its channels by mean activation
    (the order :func:`interpret.channel_order` gives), each captioned with that mean."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    batch = await explorer.image(handle, ask.image)
    maps, order = await explorer.queue(handle).run(lambda: work.layer_maps(handle, batch, layer, FEATURE_MAPS_SHOWN))
    channels = []
    for channel, values in zip(order, maps):
        key = result_key("unit", handle.name, ask.image, layer, channel)
        explorer.results.put(key, values)
        channels.append({"channel": channel, "key": key, "mean": float(values.mean()), "max": float(values.max())})
    shape = next(r["output_shape"] for r in await compute.layer_rows(explorer, handle) if r["name"] == layer)
    return render(explorer, "layer.html", model=handle.name, image=ask.image, layer=layer, channels=channels,
                  total=shape[1] if len(shape) > 1 else len(channels))


async def unit_page(explorer: Explorer, ask: Unit) -> HTMLResponse:
    """A unit: its activation, activation maximization with cancel, its top patches of --data."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    key, values = await compute.unit_activation(explorer, handle, ask.image, layer, ask.channel)
    weights = await explorer.queue(handle).run(lambda: work.unit_filter(handle, layer, ask.channel))
    filter_key = result_key("filter", handle.name, layer, ask.channel) if weights is not None else None
    if filter_key:
        explorer.results.put(filter_key, weights)
    kept = (await compute.dictionary(explorer, handle, layer, [ask.channel], patches=False))
    return render(explorer, "unit.html", model=handle.name, image=ask.image, layer=layer, channel=ask.channel,
                  sheet_state=kept["state"], sheet_picture=kept["units"][0]["picture"], words=kept["units"][0]["words"],
                  picture_src=f"/m/{handle.name}/image/{quote(ask.image, safe='')}/picture.png",
                  activation_src=f"/api/maps/{key}.png", mean=float(values.mean()), max=float(values.max()),
                  filter_src=f"/api/maps/{filter_key}.png" if filter_key else None,
                  body=json.dumps({"model": handle.name, "layer": layer, "channel": ask.channel, "watch": True}),
                  scan=await scan_offer(explorer, handle, layer) if explorer.data and kept["state"] != "kept" else None)


async def optimize_page(explorer: Explorer, ask: Optimize) -> HTMLResponse:
    """Inversion, DeepDream or a PGD attack, live, with cancel."""
    handle = explorer.model(ask.model)
    method = optimization(ask.method)
    options = page_options(method, ask.options)
    layer = explorer.layer(handle, ask.layer)
    explorer.target(handle, ask.target)
    probs = await compute.probabilities(explorer, handle, ask.image)
    body = {"model": handle.name, "image": ask.image, "method": method.name, "target": ask.target, "layer": layer,
            "options": options, "round_steps": ask.round_steps, "watch": True}
    octaves = options.get("octaves", method.options()["octaves"].default) if "octaves" in method.options() else 1
    return render(explorer, "optimize.html", model=handle.name, image=ask.image, method=method.name, octaves=octaves,
                  about=OPTIMIZATIONS[method.name], optimizations=OPTIMIZATIONS, options=json.dumps(options),
                  values=options, fields=[f for f in option_fields(method) if f["name"] not in HIDDEN],
                  target=text(ask.target), layer=text(layer), default_layer=handle.default_layer or "",
                  classes=handle.classes or [], top=work.top_classes(handle, probs, 1)[0], body=json.dumps(body),
                  cost=planned_cost(method, options, ask.round_steps))


async def image_file(explorer: Explorer, ask: Pictured) -> Response:
    """The prepared image a page shows (a sample, a data item or an upload: never a path)."""
    batch = await explorer.image(explorer.model(ask.model), ask.image)
    return Response(drawing.image_png(batch[0].cpu().numpy()), media_type="image/png")


ROUTES = [
    route("GET", "/", home),
    route("GET", "/m/{model}/image/{image}", image_page),
    route("GET", "/m/{model}/image/{image}/picture.png", image_file),
    route("GET", "/m/{model}/image/{image}/explain/{method}", explain_page),
    route("GET", "/m/{model}/image/{image}/why", why_page),
    route("GET", "/compare/{a}/{b}/image/{image}/explain/{method}", compare_page),
    route("GET", "/m/{model}/image/{image}/optimize/{method}", optimize_page),
    route("GET", "/m/{model}/layers", layers_page),
    route("GET", "/m/{model}/layers/{layer}", layer_page),
    route("GET", "/m/{model}/units/{layer}/{channel}", unit_page),
]
