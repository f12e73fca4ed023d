"""Static unit pages: the explorer's unit page (the same autoescaped template), exported to files, so a
Microscope of a model can be published without a server. Each page shows the unit's activation on an image,
its filter when it reads the pixels, its activation maximization and, given data, its top-activating patches
(the neuron atlas). Everything is written atomically under ``OUT/units/``.

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
from cnnviz.interpret.inside import channel_examples, neuron_atlas
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.data import DataSource, image_name, open_dataset

UNITS_DIR = "units"
FILES_DIR = "files"


def export_units(out: str | Path, handle: ModelHandle, layer: str, channels: Sequence[int], *,
                 image: str = "chelsea", data: DataSource | None = None, top: int = 9, actmax_steps: int = 64,
                 progress: bool = False) -> list[Path]:
    """Write one page per channel of ``layer`` and an index into ``OUT/units``; returns the pages written.

    Args:
        image: the image (a sample name or a file) whose activation each page shows.
        data: a folder, ``"fashion-mnist"`` or a dataset for the top-activating patches (none: no patches).
        top: patches per unit.
        actmax_steps: steps of each unit's activation maximization.
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
    examples = {}
    if data is not None:
        dataset = open_dataset(data)
        atlas = neuron_atlas(handle, layer, dataset, top=min(top, len(dataset)), bottom=0, progress=progress)
        examples = {ex.channel: (ex, atlas) for ex in channel_examples(handle, atlas, dataset, channels)}
    env = templates()
    label = Path(image).stem if Path(image).suffix else image
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
        picture = interpret.actmax(handle, unit=f"{layer}:{channel}", preset="jitter", steps=actmax_steps, seed=0,
                                   progress=False)
        write(f"{name}-actmax.png", drawing.image_png(picture[0].cpu().numpy()))
        patches = None
        if channel in examples:
            ex, atlas = examples[channel]
            patches = []
            for rank, patch in enumerate(ex.top_patches):
                write(f"{name}-patch-{rank}.png", drawing.image_png(patch.numpy(), side=96))
                index = int(atlas.top_indices[channel, rank])
                patches.append({"src": f"{FILES_DIR}/{name}-patch-{rank}.png", "activation":
                                float(atlas.top_values[channel, rank]), "item": image_name(dataset, index)})
        context: dict[str, Any] = {
            "exported": True, "model": handle.name, "image": label, "layer": layer, "channel": channel,
            "data": len(dataset) if data is not None else 0, "patches": patches,
            "picture_src": f"{FILES_DIR}/{stem}-image.png", "activation_src": f"{FILES_DIR}/{name}-activation.png",
            "filter_src": f"{FILES_DIR}/{name}-filter.png" if weights is not None else None,
            "actmax_src": f"{FILES_DIR}/{name}-actmax.png", "actmax_steps": actmax_steps,
            "mean": float(maps[channel].mean()), "max": float(maps[channel].max())}
        html = env.get_template("unit.html").render(**context)
        pages.append(zoo.atomic_write(inside(root, folder / f"{name}.html"), lambda f, h=html: f.write(h.encode())))
    zoo.atomic_write(inside(root, folder / STYLESHEET.name), lambda f: f.write(STYLESHEET.read_bytes()))
    index = env.get_template("units_index.html").render(
        exported=True, model=handle.name, layer=layer, units=[(c, f"{stem}-{c}.html") for c in channels])
    pages.append(zoo.atomic_write(inside(root, folder / "index.html"), lambda f: f.write(index.encode())))
    return pages
