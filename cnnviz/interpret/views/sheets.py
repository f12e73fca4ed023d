"""Result sheets: one function per picture that the CLI and the gallery show.

Every function takes what a method returned (tensors, reports, logs) and
returns a :class:`Picture` (a uint8 ``(H, W, 3)`` array that also displays
itself in a notebook) or, for charts, a matplotlib figure from
:mod:`interpret.views.charts`. The pixels come from :mod:`interpret.views.pixels`. Nothing
here computes gradients or writes files.

===========================  ============================================
picture                      function
===========================  ============================================
image | map | overlay | bar  :func:`explanation_panel`
map / map over image         :func:`attribution_views`
the top concepts (CRP)       :func:`concept_panel` (:func:`detail_panel` picks it)
a layer sheet                :mod:`.microscope`
one map, coloured            :func:`map_view`
an image as the model saw it :func:`photo`
filters of a conv layer      :func:`filter_grid`
channels of a layer          :func:`feature_map_grid`
one atlas channel            :func:`channel_sheet`
best patch per channel       :func:`atlas_overview`
top patches of channels      :func:`atlas_sheet`
clean | difference | attack  :func:`attack_panel`
captioned pictures           :func:`picture_grid` (actmax, fooling, inversion rows)
content | style | result     :func:`style_panel`
training charts              :func:`training_report`
===========================  ============================================

Example:
    >>> import torch
    >>> panel = explanation_panel(torch.rand(3, 32, 32), torch.rand(32, 32), "gradient")
    >>> panel.dtype, panel.shape[0] > 32
    (dtype('uint8'), True)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from matplotlib.figure import Figure

from cnnviz.interpret.attack.adversarial import AttackReport, amplified_difference
from cnnviz.interpret.attribution.concept_maps import ConceptRelevance
from cnnviz.interpret.views import charts
from cnnviz.interpret.views.labels import label_words
from cnnviz.interpret.views.pixels import (
    DEFAULT_COLORMAP,
    TILE,
    caption,
    captioned_grid,
    colorbar,
    colorize,
    enlarge,
    fit,
    grid,
    hstack,
    magnify,
    map_range,
    overlay,
    overlay_parts,
    same_size,
    scale_of,
    to_uint8,
    vstack,
)
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

DISPLAY = 224  # side the gallery shows model inputs at (28 px pictures enlarged without blur)


class Picture(np.ndarray):
    """A uint8 ``(H, W, 3)`` array that a notebook shows as an image (``_repr_png_``).

    Everything that takes an array takes it: it is one.
    """

    def __repr__(self) -> str:
        return f"Picture({self.shape[0]}x{self.shape[1]})" if self.ndim == 3 else super().__repr__()

    def _repr_png_(self) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.asarray(self)).save(buffer, format="PNG")
        return buffer.getvalue()


def picture(image: np.ndarray | torch.Tensor) -> Picture:
    """``image`` as a :class:`Picture` (tensors in [0, 1] are converted first)."""
    return to_uint8(image).view(Picture)


class _Png:
    """PNG bytes that a notebook displays."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _repr_png_(self) -> bytes:
        return self.data


def show(result: Any) -> Any:
    """Something a notebook displays inline: a Picture, a figure, an image or map tensor, a batch.

    Returns an object with ``_repr_png_``; in a notebook, the last line of a cell shows it.

    Example:
        >>> show(torch.rand(2, 3, 16, 16)).shape  # a batch becomes one row of pictures
        (16, 36, 3)
    """
    if isinstance(result, Figure):
        return _Png(charts.png_bytes(result))
    if isinstance(result, np.ndarray):
        return result.view(Picture) if result.dtype == np.uint8 else picture(result)
    if isinstance(result, torch.Tensor):
        tensor = result.detach().cpu()
        if tensor.dim() == 4:
            return picture(hstack([_tile(t) for t in tensor]))
        return picture(_tile(tensor))
    images = getattr(result, "images", None)  # StyleResult, FoolingResult, ...
    if isinstance(images, torch.Tensor):
        return show(images)
    raise CnnvizError(f"cannot show a {type(result).__name__}: give an image, a map, a batch or a figure")


def _tile(tensor: torch.Tensor) -> np.ndarray:
    """An image ``(C, H, W)`` in [0, 1] as it is; a single-channel map of any range coloured."""
    if tensor.dim() == 3 and tensor.shape[0] == 3:
        return to_uint8(tensor)
    if tensor.dim() == 3 and tensor.shape[0] == 1 and 0 <= float(tensor.min()) and float(tensor.max()) <= 1:
        return to_uint8(tensor)
    return colorize(tensor)


# ---------------------------------------------------------------- attribution

def explanation_panel(image: torch.Tensor, values: torch.Tensor, title: str, *, colormap: str = DEFAULT_COLORMAP,
                      symmetric: bool | None = None, alpha: float = 0.5, percentile: float = 99.5,
                      marked: np.ndarray | None = None) -> Picture:
    """The image, the map, the map over the image and a numbered colour bar, captioned with ``title``.

    ``marked``: the image with what is explained drawn on it (a segmentation region, a detector's
    boxes: see :mod:`interpret.views.dense`), shown first.

    The colour bar shows the map's own values: its minimum and its ``percentile``
    (or +-that for ``symmetric`` maps), where the colour scale clips. ``symmetric`` None: a signed map (with
    negative values that matter, :func:`~interpret.views.pixels.is_signed`) is drawn about zero, on the diverging
    scale unless another colormap is asked for. Inputs smaller than
    224 px (a 28 px Fashion-MNIST model) are enlarged by a whole factor, without blur.

    Example:
        >>> explanation_panel(torch.rand(1, 28, 28), torch.rand(28, 28), "gradient").shape[1] > 3 * 224
        True
    """
    colormap, symmetric = scale_of(values, colormap, symmetric)
    base, heat, blended = overlay_parts(image, values, alpha=alpha, colormap=colormap, symmetric=symmetric,
                                        percentile=percentile)
    parts = [base, heat, blended] if marked is None else [marked, base, heat, blended]
    if max(base.shape[:2]) < DISPLAY:
        parts = [enlarge(part, DISPLAY) for part in parts]
    low, high = map_range(values, symmetric=symmetric, percentile=percentile)
    bar = colorbar(parts[0].shape[0], colormap, low=low, high=high)
    return picture(caption(hstack([*parts, bar]), title))


def concept_tiles(image: torch.Tensor, found: Any, b: int, *, side: int = DISPLAY,
                  colormap: str = DEFAULT_COLORMAP,
                  dictionary: Any = None, labels: Any = None) -> tuple[list[np.ndarray], list[str]]:
    """The tiles of :func:`concept_panel` and their captions: the image, the unconditional map over it, then each
    concept's conditional map over it (the positive relevance, each map on its own scale); with a ``dictionary``
    (a layer sheet of the layer: a semantic dictionary), each concept's feature visualization beside its map (none
    where the sheet has no picture of the channel); with ``labels`` (the layer's network dissection), each
    channel's label and IoU in its caption."""

    def over(values: torch.Tensor) -> np.ndarray:
        return overlay(image, values.clamp_min(0), colormap=colormap, percentile=99.5)

    tiles, texts = [to_uint8(image), over(found.total[b])], [found.layer, "all channels"]
    for k in range(found.channels.shape[1]):
        tiles.append(over(found.maps[b, k]))
        channel = int(found.channels[b, k])
        named = label_words(None if labels is None else labels.label(channel))
        texts.append(f"#{channel}  {float(found.shares[b, k]):+.1%}" + (f"  {named}" if named else ""))
        looks = None if dictionary is None else dictionary.picture(channel)
        if looks is not None:
            tiles.append(to_uint8(looks[0]))
            texts.append(f"#{channel} looks for")
    return [enlarge(tile, side) if max(tile.shape[:2]) < side else tile for tile in tiles], texts


def concept_panel(image: torch.Tensor, found: Any, b: int, title: str, *, colormap: str = DEFAULT_COLORMAP,
                  columns: int = 8, dictionary: Any = None, labels: Any = None) -> Picture:
    """Image ``b``'s concepts (a :class:`~interpret.attribution.ConceptRelevance`): the image, its unconditional
    relevance, then per concept, most relevant first, its channel, its share of the relevance and its conditional
    map over the image; ``columns`` tiles a row, captioned with ``title``.

    Example:
        >>> from types import SimpleNamespace as Found
        >>> found = Found(layer="features", channels=torch.tensor([[4, 1]]), shares=torch.tensor([[0.5, -0.1]]),
        ...               maps=torch.randn(1, 2, 28, 28), total=torch.randn(1, 1, 28, 28))
        >>> concept_panel(torch.rand(1, 28, 28), found, 0, "concepts").shape[1] == 4 * DISPLAY + 3 * 4
        True
    """
    tiles, texts = concept_tiles(image, found, b, colormap=colormap, dictionary=dictionary, labels=labels)
    return picture(caption(captioned_grid(tiles, texts, min(columns, len(tiles))), title))


def detail_panel(image: torch.Tensor, found: Any, b: int, title: str, *,
                 colormap: str = DEFAULT_COLORMAP, dictionary: Any = None, labels: Any = None) -> Picture:
    """The panel of image ``b`` in a method's full result (``Method.detail``): the concept panel for CRP (with
    each concept's feature visualization from ``dictionary``, a layer sheet, and its dissection label from
    ``labels``, when given)."""
    if isinstance(found, ConceptRelevance):
        return concept_panel(image, found, b, title, colormap=colormap, dictionary=dictionary, labels=labels)
    raise CnnvizError(f"no panel is drawn for a {type(found).__name__}")


def attribution_views(image: torch.Tensor, values: torch.Tensor, *, side: int = DISPLAY,
                      colormap: str = DEFAULT_COLORMAP, percentile: float = 99.5) -> tuple[Picture, Picture]:
    """The map and the map over the image, enlarged to about ``side`` (the gallery's attribution card); a signed
    map about zero, as :func:`explanation_panel` draws it.

    Example:
        >>> heat, blend = attribution_views(torch.rand(3, 28, 28), torch.rand(28, 28))
        >>> heat.shape, blend.shape
        ((224, 224, 3), (224, 224, 3))
    """
    colormap, symmetric = scale_of(values, colormap)
    heat = colorize(values, colormap, symmetric=symmetric, percentile=percentile)
    blend = overlay(image, values, colormap=colormap, symmetric=symmetric, percentile=percentile)
    return picture(enlarge(heat, side)), picture(enlarge(blend, side))


def map_view(values: torch.Tensor, *, side: int = DISPLAY, colormap: str = DEFAULT_COLORMAP) -> Picture:
    """One map coloured and enlarged to about ``side`` (a random baseline map, a single channel)."""
    return picture(enlarge(colorize(values, colormap), side))


def photo(image: torch.Tensor | np.ndarray, side: int = DISPLAY) -> Picture:
    """An image as a model sees it, enlarged to about ``side`` (28 px inputs without blur)."""
    return picture(enlarge(to_uint8(image), side))


# ---------------------------------------------------------------- filters and feature maps

def filter_grid(tiles: torch.Tensor, *, mode: str = "rgb", inputs: int | None = None,
                title: str | None = None, side: int = TILE // 2) -> Picture:
    """Filters ``(K, C, h, w)`` from :func:`interpret.inside.filters` as a grid, enlarged without blur.

    Args:
        tiles: the filters, each scaled to [0, 1].
        mode: ``"channels"``: one row per filter, one tile per input channel (the first ``inputs``);
            otherwise one tile per filter.
        title: a caption under the grid.
        side: about how large each tile is drawn.

    Example:
        >>> filter_grid(torch.rand(8, 3, 3, 3), title="conv1").dtype
        dtype('uint8')
    """
    scale = max(1, side // max(tiles.shape[-2:]))
    if mode == "channels":
        count = min(tiles.shape[1], inputs or tiles.shape[1])
        image = grid([t[c:c + 1] for t in tiles for c in range(count)], columns=count, pad=1, scale=scale)
    else:
        image = grid(list(tiles), pad=2, scale=scale)
    return picture(caption(image, title) if title else image)


def feature_map_grid(maps: torch.Tensor, channels: Sequence[int], *, image: torch.Tensor | None = None,
                     colormap: str = DEFAULT_COLORMAP, side: int = TILE, columns: int | None = None,
                     title: str | None = None) -> Picture:
    """Channels of one image's maps ``(C, h, w)``, each captioned with its index and mean.

    Args:
        maps: one image's feature maps.
        channels: which channels, in order (e.g. from :func:`interpret.channel_order`).
        image: draw each map over this image instead of on its own.
        side: about how large each tile is drawn (maps alone; overlays keep the image's size).
        columns: tiles per row (default: about square).
        title: a caption under the grid.

    Example:
        >>> feature_map_grid(torch.rand(4, 7, 7), [2, 0], columns=2).shape[1] > 2 * 90
        True
    """
    tiles = [overlay(image, maps[c], colormap=colormap) if image is not None
             else enlarge(colorize(maps[c], colormap), side) for c in channels]
    texts = [f"c{c} {maps[c].mean():.2f}" for c in channels]
    sheet = captioned_grid(tiles, texts, columns)
    return picture(caption(sheet, title) if title else sheet)


# ---------------------------------------------------------------- neuron atlas

def patch_tile(image: torch.Tensor, box: Any, input_size: int) -> np.ndarray:
    """The patch of ``box`` (unclipped) on a gray canvas the size of the receptive field (capped at
    the image): where the field reaches past the image edge the canvas stays gray, so the unit sits
    at the same place in every tile."""
    inside = box.clip(input_size, input_size)
    patch = image[:, inside.top:inside.bottom, inside.left:inside.right]
    height, width = min(box.height, input_size), min(box.width, input_size)
    canvas = torch.full((image.shape[0], height, width), 0.5)
    top = min(inside.top - box.top, height - patch.shape[1])
    left = min(inside.left - box.left, width - patch.shape[2])
    canvas[:, top:top + patch.shape[1], left:left + patch.shape[2]] = patch
    return to_uint8(canvas)


def with_box(image: torch.Tensor, box: Any) -> np.ndarray:
    """The image with the box outlined in red."""
    canvas = to_uint8(image).copy()
    cv2.rectangle(canvas, (box.left, box.top), (box.right - 1, box.bottom - 1), (255, 0, 0), 1)
    return canvas


def channel_sheet(ex: Any, atlas: Any, names: Sequence[str], dictionary: Any = None, labels: Any = None) -> Picture:
    """One atlas channel: its top patches, its top images with their boxes, its bottom images; first, what it
    looks for when a ``dictionary`` (the layer's :class:`~interpret.inside.LayerSheet`) is given.

    Args:
        ex: the channel's :class:`interpret.inside.atlas.scan.ChannelExamples`.
        atlas: the :class:`interpret.inside.atlas.scan.Atlas`.
        names: captions of the top images.
        dictionary: the layer's sheet, for the channel's feature visualizations.
        labels: the layer's network dissection, for the channel's label and IoU in the title.
    """
    c = ex.channel
    relevance = getattr(atlas, "ranked_by", "activation") == "relevance"  # shares of the relevance, signed
    value = "{:+.1%}" if relevance else "{:.2f}"
    patches = [enlarge(patch_tile(im, atlas.box(c, r, clip=False), atlas.input_size))
               for r, im in enumerate(ex.top_images)]
    unit = "most relevant unit; relevance share" if relevance else "maximal unit"
    rows = [caption(captioned_grid(patches, [value.format(v) for v in atlas.top_values[c].tolist()], len(patches)),
                    f"top-{len(patches)} patches (receptive field of the {unit})")]
    looks = None if dictionary is None else dictionary.picture(c)
    if looks is not None:
        rows.insert(0, caption(hstack([enlarge(to_uint8(p)) for p in looks]), "what it looks for"))
    tops = [enlarge(with_box(im, box)) for im, box in zip(ex.top_images, ex.top_boxes)]
    rows.append(caption(captioned_grid(tops, names[: len(tops)], len(tops)), "top images, box = patch"))
    if len(ex.bottom_images):
        bottoms = [enlarge(to_uint8(im)) for im in ex.bottom_images]
        texts = [value.format(v) for v in atlas.bottom_values[c].tolist()]
        weakest = "most negative relevance" if relevance else "weakest maxima"
        rows.append(caption(captioned_grid(bottoms, texts, len(bottoms)), f"bottom images ({weakest})"))
    dead = ("never relevant" if relevance else "dead: never positive") if c in set(atlas.dead) else ""
    named = label_words(None if labels is None else labels.label(c))
    title = f"{atlas.layer} channel {c}" + (f": {named}" if named else "") + (f" ({dead})" if dead else "")
    return picture(caption(vstack(rows), title))


def atlas_overview(examples: Sequence[Any], atlas: Any, title: str) -> Picture:
    """The best patch of each channel in ``examples``, captioned with the channel (and "dead")."""
    dead = set(atlas.dead)
    tiles = [enlarge(patch_tile(ex.top_images[0], atlas.box(ex.channel, 0, clip=False), atlas.input_size))
             for ex in examples]
    texts = [f"c{ex.channel}" + (" dead" if ex.channel in dead else "") for ex in examples]
    return picture(caption(captioned_grid(tiles, texts), title))


def atlas_sheet(examples: Sequence[Any], atlas: Any, *, side: int = 64) -> Picture:
    """One row per channel: its top patches (receptive field of the maximal unit) and their activations."""
    if not examples:
        raise CnnvizError("no channels to draw")
    rows = []
    for ex in examples:
        patches = [fit(patch_tile(im, atlas.box(ex.channel, r, clip=False), atlas.input_size), side)
                   for r, im in enumerate(ex.top_images)]
        values = atlas.top_values[ex.channel].tolist()
        rows.append(caption(hstack(patches, pad=2), f"channel {ex.channel}: " + " ".join(f"{v:.1f}" for v in values)))
    return picture(vstack(rows))


# ---------------------------------------------------------------- optimization and attacks

def picture_grid(images: torch.Tensor | Sequence[torch.Tensor | np.ndarray], texts: Sequence[str], *,
                 side: int | None = None, columns: int | None = None) -> Picture:
    """Captioned pictures in a grid: class visualizations, fooling images, an inversion row.

    Args:
        images: pictures in [0, 1] (or uint8 arrays).
        texts: one caption each.
        side: enlarge (nearest) or shrink (area) each to about this side; None keeps the size.
        columns: pictures per row (default: about square).

    Example:
        >>> picture_grid(torch.rand(3, 3, 28, 28), ["a", "b", "c"], side=160, columns=3).shape[1] > 3 * 140
        True
    """
    tiles = [to_uint8(im) for im in images]
    if side is not None:
        tiles = [enlarge(t, side) for t in tiles]
    return picture(captioned_grid(tiles, texts, columns))


def attack_panel(handle: Any, images: torch.Tensor, adversarial: torch.Tensor, report: Any, i: int, *,
                 scale: int = 1) -> Picture:
    """Image | amplified difference | adversarial image for image ``i``, each captioned.

    Args:
        handle: the model (for class names).
        images, adversarial: the clean and attacked batches.
        report: their :class:`interpret.attack.adversarial.AttackReport`.
        i: which image.
        scale: enlarge each tile this many times without blur (28 px images).
    """

    tiles = [images[i], amplified_difference(images[i:i + 1], adversarial[i:i + 1])[0], adversarial[i]]
    arrays = [magnify(to_uint8(t), scale) for t in tiles]
    return picture(hstack([caption(a, text) for a, text in zip(arrays, attack_captions(handle, report, i))]))


def style_panel(content: torch.Tensor, style: torch.Tensor, result: torch.Tensor, texts: Sequence[str], *,
                side: int | None = None) -> Picture:
    """Content | style | result, captioned; with ``side``, the inputs fitted into ``side`` squares."""
    tiles = [to_uint8(t) for t in (content, style, result)]
    if side is not None:
        tiles = [fit(tiles[0], side), fit(tiles[1], side), tiles[2]]
    return picture(hstack([caption(t, text) for t, text in zip(same_size(tiles), texts)]))  # captions in line


# ---------------------------------------------------------------- training

def training_report(log: Any, title: str | None = None) -> dict[str, Figure]:
    """The charts of a training log: ``curves`` always; ``confusion``, ``gradients`` and ``activations``
    when the log has them.

    Args:
        log: a :class:`zoo.training_log.TrainingLog`.
        title: above the curves (default: the run, dataset and held-out accuracy).
    """
    title = title or (f"{log.name}: {log.spec.arch} ({log.spec.activation}) on {log.dataset.name}; "
                      f"{log.test.split} accuracy {100 * log.test.accuracy:.2f}%")
    figures = {"curves": charts.training_curves(log.history, title=title)}
    if log.confusion_matrix:
        figures["confusion"] = charts.confusion(torch.tensor(log.confusion_matrix), log.classes)
    if log.gradient_norms:
        figures["gradients"] = charts.bars(log.gradient_norms, log=True, width=640,
                                           title="gradient norm per layer (one validation batch, log scale)")
    if log.activations:
        figures["activations"] = charts.activation_bars(log.activations)
    return figures


def attack_captions(handle: ModelHandle, report: AttackReport, i: int) -> tuple[str, str, str]:
    """Captions for image ``i``: clean, difference, adversarial."""
    clean = f"original: {handle.class_name(int(report.original[i]))} {report.original_confidence[i]:.1%}"
    linf = float(report.linf[i])
    diff = f"difference (amplified {0.5 / max(linf, 1e-12):.0f}x): Linf {linf * 255:.2f}/255, L2 {report.l2[i]:.3f}"
    adv = f"adversarial: {handle.class_name(int(report.adversarial[i]))} {report.adversarial_confidence[i]:.1%}"
    if report.target is not None:
        adv += f" (target {handle.class_name(int(report.target[i]))} {report.target_confidence[i]:.1%})"
    return clean, diff, adv
