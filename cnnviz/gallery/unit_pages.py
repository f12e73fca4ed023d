"""Static unit pages: the explorer's unit page (the same autoescaped template), exported to files, so a
Microscope of a model can be published without a server. Each page shows the unit's activation on an image,
its filter when it reads the pixels, and from the layer's sheet its feature visualization and, given data, its
top-activating patches and statistics. Everything is written atomically under ``OUT/units/``.

Example:
    >>> import tempfile
    >>> from cnnviz import zoo
    >>> pages = export_units(tempfile.mkdtemp(), zoo.load("fashion_cnn", device="cpu"), "features.block1", [0],
    ...                      image="coffee", actmax_steps=2)
    >>> [page.name for page in pages]
    ['fashion_cnn-features-block1-dbbc49-0.html', 'index.html']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.explorer import drawing, work
from cnnviz.explorer.templating import STYLESHEET, templates
from cnnviz.gallery.cards import inside, slug
from cnnviz.explorer.sheet_job import cached_sheet
from cnnviz.interpret.inside import Dissection, LayerSheet, channel_examples
from cnnviz.interpret.views import unit_words
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.data import DataSource, image_name, open_dataset

UNITS_DIR = "units"
FILES_DIR = "files"


def export_units(out: str | Path, handle: ModelHandle, layer: str, channels: Sequence[int], *,
                 image: str = "chelsea", data: DataSource | None = None, top: int = 9, actmax_steps: int = 64,
                 progress: bool = False, sheet: LayerSheet | None = None, cache: Path | None = None,
                 labels: Dissection | None = None) -> list[Path]:
    """Write one page per channel of ``layer`` and an index into ``OUT/units``; returns the pages written. The
    pictures, patches and statistics come from the layer's sheet (:func:`interpret.layer_sheet`: one optimization
    for every channel, one scan of the data).

    Args:
        image: the image (a sample name or a file) whose activation each page shows.
        data: a folder, ``"fashion-mnist"`` or a dataset for the top-activating patches (none: no patches).
        top: patches per unit.
        actmax_steps: steps of each unit's feature visualization.
        sheet: the layer's sheet already made (``cnnviz microscope``'s ``sheet.npz``) instead of making it; its
            patches are drawn from ``data``.
        cache: the folder the sheet is kept in (see :func:`explorer.sheet_job.cached_sheet`).
        labels: the layer's dissection: each page shows its unit's label with the IoU beside it.
    """
    root = Path(out)
    folder = inside(root, root / UNITS_DIR)
    files = folder / FILES_DIR
    handle.layer(layer)
    batch = handle.prepare([zoo.load_image(image, channels=handle.in_channels)])
    maps = interpret.feature_maps(handle, batch, layer=layer)[0]
    channels = list(channels)
    bad = [c for c in channels if not 0 <= c < maps.shape[0]]
    if bad or not channels:
        raise CnnvizError(f"layer {layer!r} has channels 0 to {maps.shape[0] - 1}; asked for {bad or 'none'}")
    if sheet is not None and sheet.layer != layer:
        raise CnnvizError(f"the sheet given is of layer {sheet.layer!r}, not {layer!r}")
    sheet = sheet or cached_sheet(handle, layer, data, cache=cache, top=top, steps=actmax_steps, progress=progress)
    dataset = open_dataset(data) if data is not None else None
    examples = {}
    if dataset is not None and sheet.atlas is not None:
        examples = {ex.channel: ex for ex in channel_examples(handle, sheet.atlas, dataset, channels)}
    env = templates()
    label = labels.label if labels is not None else lambda channel: None
    shown = Path(image).stem if Path(image).suffix else image
    write = lambda name, content: zoo.atomic_write(inside(root, files / name), lambda f: f.write(content))
    stem = slug(f"{handle.name}-{layer}")
    write(f"{stem}-image.png", drawing.image_png(batch[0].cpu().numpy()))
    pages = []
    for channel in channels:
        name = f"{stem}-{channel}"
        write(f"{name}-activation.png", drawing.map_png(maps[channel].cpu().numpy(), side=224))
        weights = work.unit_filter(handle, layer, channel)
        if weights is not None:
            write(f"{name}-filter.png", drawing.image_png(weights, side=96))
        looks = sheet.picture(channel)  # None: the sheet has no picture of it
        if looks is not None:
            write(f"{name}-actmax.png", drawing.image_png(looks[0].numpy()))
        patches = None
        if channel in examples:
            patches = []
            for rank, patch in enumerate(examples[channel].top_patches):
                write(f"{name}-patch-{rank}.png", drawing.image_png(patch.numpy(), side=96))
                index = int(sheet.atlas.top_indices[channel, rank])
                patches.append({"src": f"{FILES_DIR}/{name}-patch-{rank}.png", "activation":
                                float(sheet.atlas.top_values[channel, rank]), "item": image_name(dataset, index)})
        context: dict[str, Any] = {
            "exported": True, "model": handle.name, "image": shown, "layer": layer, "channel": channel,
            "data": len(dataset) if dataset is not None else 0, "patches": patches,
            "picture_src": f"{FILES_DIR}/{stem}-image.png", "activation_src": f"{FILES_DIR}/{name}-activation.png",
            "filter_src": f"{FILES_DIR}/{name}-filter.png" if weights is not None else None,
            "actmax_src": f"{FILES_DIR}/{name}-actmax.png" if looks is not None else None,
            "actmax_steps": sheet.steps, "words": unit_words(sheet, channel, label(channel)),
            "mean": float(maps[channel].mean()), "max": float(maps[channel].max())}
        html = env.get_template("unit.html").render(**context)
        pages.append(zoo.atomic_write(inside(root, folder / f"{name}.html"), lambda f, h=html: f.write(h.encode())))
    zoo.atomic_write(inside(root, folder / STYLESHEET.name), lambda f: f.write(STYLESHEET.read_bytes()))
    index = env.get_template("units_index.html").render(
        exported=True, model=handle.name, layer=layer,
        units=[(c, f"{stem}-{c}.html", f"{FILES_DIR}/{stem}-{c}-actmax.png" if sheet.picture(c) is not None else None,
                unit_words(sheet, c, label(c))) for c in channels])
    pages.append(zoo.atomic_write(inside(root, folder / "index.html"), lambda f: f.write(index.encode())))
    return pages
