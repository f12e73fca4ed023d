"""The results the routes answer, each checked against the served models, computed on its device's compute
queue and kept in the result cache (:meth:`Explorer.cached`): the API and the pages call the same functions, so
a page and a script see the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cnnviz import interpret
from cnnviz.explorer import drawing, work
from cnnviz.explorer.errors import NotFound
from cnnviz.explorer.options import check_options
from cnnviz.explorer.requests import RESULT_FILES, Compare, Explain
from cnnviz.explorer.state import Explorer, result_key
from cnnviz.interpret.views import unit_words
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle


async def probabilities(explorer: Explorer, handle: ModelHandle, name: str) -> torch.Tensor:
    """The model's class probabilities on an image."""
    batch = await explorer.image(handle, name)
    return await explorer.cached(f"probabilities:{handle.name}:{name}",
                                 lambda: work.probabilities(handle, batch), on=handle)


async def layer_rows(explorer: Explorer, handle: ModelHandle) -> list[dict[str, Any]]:
    """The layer table of a model."""
    def rows() -> list[dict[str, Any]]:
        return [{"name": r.name, "type": r.type, "depth": r.depth, "output_shape": list(r.output_shape or []),
                 "calls": r.calls, "params": r.params} for r in interpret.layer_table(handle)]

    return await explorer.cached(f"layers:{handle.name}", rows, on=handle)


async def explanation(explorer: Explorer, ask: Explain) -> tuple[str, work.Explanation]:
    """An explanation and the key its files are served under."""
    handle = explorer.model(ask.model)
    method = explorer.method(ask.method)
    target = explorer.target(handle, ask.target)
    layer = explorer.layer(handle, ask.layer)
    options = check_options(method, ask.options)
    batch = await explorer.image(handle, ask.image)
    region, box, name = ask.region, ask.box, ask.image
    dense = region is not None or box is not None
    key = result_key("explain", handle.name, name, method.name, target, layer if method.uses_layer else None,
                     options, *([region, box] if dense else []))
    stem = f"{name}-{method.name}"  # cleaned by zoo.safe_name, as cnnviz explain names its files
    if handle.config.task != "classification" or dense:
        return key, await explorer.cached(key, lambda: work.explain_dense(
            handle, method, batch, name, target, region, box, layer, options, stem), on=handle)

    async def explain() -> work.Explanation:
        probs = await probabilities(explorer, handle, name)
        return await explorer.queue(handle).run(
            lambda: work.explain(handle, method, batch, probs, name, target, layer, options, stem))

    return key, await explorer.cached(key, explain)


def files(key: str) -> dict[str, str]:
    """The URLs of an explanation's files."""
    return {name: f"/api/results/{key}/{name}" for name in RESULT_FILES}


async def comparison(explorer: Explorer, ask: Compare) -> list[dict[str, Any]]:
    """The same explanation from each of two served models, each as /api/explain answers it."""
    for name in ask.models:
        explorer.model(name)
    answers = []
    for name, layer in zip(ask.models, ask.layers):
        key, found = await explanation(explorer, Explain(**ask.explaining(), model=name, layer=layer))
        answers.append({"model": name, "key": key, "record": found.record, "files": files(key)})
    return answers


async def faithfulness(explorer: Explorer, key: str, steps: int) -> dict[str, Any]:
    """Deletion/insertion curves and their areas of a kept explanation."""
    found: work.Explanation | None = explorer.results.get(key)
    if found is None:
        raise NotFound(f"no explanation {key!r} is kept: ask /api/explain first and pass its key")
    handle = explorer.model(found.record["model"])
    return await explorer.cached(result_key("faithfulness", key, steps),
                                 lambda: work.faithfulness(handle, found, steps), on=handle)


async def result_file(explorer: Explorer, key: str, name: str) -> tuple[bytes, work.Explanation]:
    """A file of a kept explanation (drawn once), with the explanation."""
    found: work.Explanation | None = explorer.results.get(key)
    if found is None:
        raise NotFound(f"result {key} is no longer kept: ask /api/explain again")
    draw = {"panel.png": lambda: drawing.panel_png(found.image, found.flat, found.title, found.marked),
            "image.png": lambda: drawing.image_png(found.image) if found.marked is None
            else drawing.marked_png(found.marked),
            "heat.png": lambda: drawing.heat_png(found.image, found.flat),
            "colorbar.png": lambda: drawing.colorbar_png(found.flat),
            "map.npy": lambda: drawing.npy(found.raw),
            "record.json": lambda: work.record_json(found)}[name]
    return await explorer.cached(f"{key}/{name}", draw), found


async def unit_activation(explorer: Explorer, handle: ModelHandle, name: str, layer: str,
                          channel: int) -> tuple[str, np.ndarray]:
    """A channel's activation map on an image, with the key its picture is served under."""
    batch = await explorer.image(handle, name)
    key = result_key("unit", handle.name, name, layer, channel)
    return key, await explorer.cached(key, lambda: work.unit_activation(handle, batch, layer, channel), on=handle)


async def evidence_rows(explorer: Explorer, handle: ModelHandle, name: str, layer: str, target: int | None,
                        top: int) -> list[dict[str, Any]]:
    """The ``top`` channels with the most evidence, each with the key its evidence map is served under."""
    batch = await explorer.image(handle, name)
    rows = await explorer.queue(handle).run(lambda: work.evidence(handle, batch, target, layer, top))
    channels = []
    for channel, total, values in rows:
        key = result_key("evidence", handle.name, name, layer, target, channel)
        explorer.results.put(key, values)
        channels.append({"channel": channel, "evidence": total, "key": key})
    return channels


async def unit_patches(explorer: Explorer, handle: ModelHandle, layer: str, channel: int) -> list[dict[str, Any]]:
    """The channel's top-activating patches of the data (from its layer's atlas), each with the key its picture
    is served under."""
    atlas = await explorer.atlas(handle, layer)
    if atlas is None:
        raise NotFound(f"the atlas of {layer!r} is not computed yet: POST /api/atlas with its layer, then wait for "
                       "the job")
    return await atlas_patches(explorer, handle, atlas, explorer.atlas_path(handle, layer).name, channel)


async def atlas_patches(explorer: Explorer, handle: ModelHandle, atlas: Any, name: str,
                        channel: int) -> list[dict[str, Any]]:
    """The channel's top patches in ``atlas`` (kept, or a scan's so far: ``name`` says which, with the items
    scanned), each with the key its picture is served under."""
    if not 0 <= channel < atlas.channels:
        raise CnnvizError(f"layer {atlas.layer!r} has channels 0 to {atlas.channels - 1}, not {channel}")
    key = result_key("patches", handle.name, name, atlas.count, channel)

    async def rows() -> list[dict[str, Any]]:
        example = await explorer.queue(handle).run(
            lambda: next(interpret.inside.channel_examples(handle, atlas, explorer.data, [channel])))
        found = []
        for rank, (patch, box) in enumerate(zip(example.top_patches, example.top_boxes)):
            index = int(atlas.top_indices[channel, rank])
            picture_key = result_key("patch", key, rank)
            explorer.results.put(picture_key, patch.numpy())
            found.append({"rank": rank, "index": index, "item": f"data:{index}",
                          "activation": float(atlas.top_values[channel, rank]), "box": list(box),
                          "map": f"/api/maps/{picture_key}.png"})
        return found

    return await explorer.cached(key, rows)


async def dictionary(explorer: Explorer, handle: ModelHandle, layer: str, channels: list[int] | None, *,
                     patches: bool = True) -> dict[str, Any]:
    """A semantic dictionary of ``channels`` of ``layer`` (default: all): each channel's feature visualization,
    top patches and words (statistics, and its dissection label with the IoU where the cache folder keeps one for
    these weights), from the layer's sheet as far as it is made (``state``: ``kept``, ``making`` with the ``job``,
    or ``missing``; never starting it)."""
    path = explorer.sheet_path(handle, layer)
    sheet = await explorer.sheet(handle, layer)
    job = None if sheet is not None else explorer.sheet_jobs.get(path)
    picture = sheet.picture if sheet is not None else job.picture if job is not None else (lambda c: None)
    atlas = sheet.atlas if sheet is not None else job.current() if job is not None and explorer.data else None
    count = sheet.channels if sheet is not None else job.channels if job is not None else None
    chosen = channels if channels is not None else list(range(count or 0))
    if count is not None and any(not 0 <= c < count for c in chosen):
        raise CnnvizError(f"layer {layer!r} has channels 0 to {count - 1}, not {max(chosen)}")
    labels = explorer.dissection(handle, layer)
    units = []
    for c in chosen:
        label = labels.label(c) if labels is not None else None
        unit: dict[str, Any] = {"channel": c, "picture": None, "patches": [], "words": unit_words(sheet, c, label),
                                "label": label.as_dict() if label is not None else None}
        made = picture(c)
        if made is not None:
            picture_key = result_key("sheet-picture", path.name, c)
            explorer.results.put(picture_key, made[0].numpy())
            unit["picture"] = f"/api/maps/{picture_key}.png"
        if patches and atlas is not None and atlas.count:
            unit["patches"] = await atlas_patches(explorer, handle, atlas, path.name, c)
        units.append(unit)
    state = "kept" if sheet is not None else "missing" if job is None else "making" if not job.over else job.state
    return {"model": handle.name, "layer": layer, "state": state, "job": job.id if job is not None else None,
            "error": job.error if job is not None else None,
            "scanned": atlas.count if atlas is not None else 0, "items": len(explorer.data) if explorer.data else 0,
            "units": units}
