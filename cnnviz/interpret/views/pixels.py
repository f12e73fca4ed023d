"""Pixel primitives: tensors in, uint8 ``(H, W, 3)`` arrays out, one copy of each. Nothing here computes.

Colormaps, overlays, captions (in any colour), a numbered colour bar, enlarging,
fitting, grids and stacks. The sheets built from them are in :mod:`interpret.views.sheets`;
matplotlib charts in :mod:`interpret.views.charts`.

Example:
    >>> import torch
    >>> image, saliency = torch.rand(3, 64, 64), torch.rand(1, 64, 64)
    >>> overlay(image, saliency).shape
    (64, 64, 3)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from cnnviz.zoo.core import CnnvizError

TILE = 96  # display side that small filters, maps and patches are enlarged to (nearest, no blur)
COLORMAPS = {name[len("COLORMAP_"):].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")}
DEFAULT_COLORMAP = "viridis"  # perceptually uniform: equal steps in value look like equal steps in colour
Color = tuple[int, int, int]
BLACK: Color = (0, 0, 0)
DIVERGING = "diverging"  # blue below zero, near white at zero, red above: how a signed map is drawn
_DIVERGING_STOPS = [(33, 102, 172), (103, 169, 207), (209, 229, 240), (247, 247, 247), (253, 219, 199),
                    (239, 138, 98), (178, 24, 43)]  # ColorBrewer's RdBu, reversed
_DIVERGING_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_DIVERGING_STOPS)), channel)
                           for channel in np.array(_DIVERGING_STOPS, float).T], axis=1).round().astype(np.uint8)
SIGNED_SHARE = 0.01  # a map is signed when its most negative value reaches 1% of its largest magnitude


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` tensor in [0, 1] as an ``(H, W, 3)`` uint8 array (gray repeated, bands past 3 dropped)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
        if image.ndim == 3:
            image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 2:
        image = image[:, :, :1]
    elif image.shape[2] > 3:
        image = image[:, :, :3]  # a multi-band image (RGB + near infrared, ...) shows its first three bands
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def normalize_map(values: torch.Tensor | np.ndarray, *, symmetric: bool = False,
                  percentile: float = 100.0) -> np.ndarray:
    """Scale a 2-D map to [0, 1] (min..max), or to [-1, 1] about zero when ``symmetric``.

    ``percentile`` < 100 clips the top (pixel gradients have a few huge
    outliers that would otherwise leave the rest of the map black).
    """
    array = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise CnnvizError(f"a map must be 2-D (or (1, H, W)), got shape {array.shape}")
    array = np.nan_to_num(array.astype(np.float32))
    if symmetric:
        top = float(np.percentile(np.abs(array), percentile))
        return np.clip(array / top, -1.0, 1.0) if top > 0 else np.zeros_like(array)
    low, high = float(array.min()), float(np.percentile(array, percentile))
    return np.clip((array - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(array)


def is_signed(values: torch.Tensor | np.ndarray) -> bool:
    """Whether a map has negative values that matter (down to :data:`SIGNED_SHARE` of its largest magnitude),
    so that zero must be seen: such a map is drawn about zero on the :data:`DIVERGING` scale.

    Example:
        >>> is_signed(np.array([[-0.5, 1.0]])), is_signed(np.array([[0.0, 1.0]])), is_signed(np.array([[-1e-6, 1.0]]))
        (True, False, False)
    """
    array = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    array = np.nan_to_num(array.astype(np.float32))
    low, top = float(array.min(initial=0.0)), float(np.abs(array).max(initial=0.0))
    return low < 0 and -low >= SIGNED_SHARE * top


def scale_of(values: torch.Tensor | np.ndarray, colormap: str = DEFAULT_COLORMAP,
             symmetric: bool | None = None) -> tuple[str, bool]:
    """The colormap and scale a map is drawn with: ``symmetric`` None decides by :func:`is_signed`; a map drawn
    about zero with the default colormap takes the :data:`DIVERGING` one, so zero is visible.

    Example:
        >>> scale_of(np.array([[-0.5, 1.0]])), scale_of(np.array([[0.0, 1.0]]))
        (('diverging', True), ('viridis', False))
    """
    symmetric = is_signed(values) if symmetric is None else symmetric
    return (DIVERGING if symmetric and colormap == DEFAULT_COLORMAP else colormap), symmetric


def colorize(values: torch.Tensor | np.ndarray, colormap: str = DEFAULT_COLORMAP, *, symmetric: bool = False,
             percentile: float = 100.0) -> np.ndarray:
    """A 2-D map as an RGB heatmap with an OpenCV colormap (or :data:`DIVERGING`)."""
    if colormap not in COLORMAPS and colormap != DIVERGING:
        raise CnnvizError(f"unknown colormap {colormap!r}: choose from {', '.join(sorted([*COLORMAPS, DIVERGING]))}")
    unit = normalize_map(values, symmetric=symmetric, percentile=percentile)
    if symmetric:
        unit = (unit + 1.0) / 2.0
    levels = (unit * 255.0 + 0.5).astype(np.uint8)
    if colormap == DIVERGING:
        return _DIVERGING_LUT[levels]
    bgr = cv2.applyColorMap(levels, COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay_parts(image: torch.Tensor | np.ndarray, values: torch.Tensor | np.ndarray, *, alpha: float = 0.5,
                  colormap: str = DEFAULT_COLORMAP, symmetric: bool = False,
                  percentile: float = 100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image, the heatmap of ``values`` at the image's size, and the heatmap blended over the image."""
    base = to_uint8(image)
    heat = colorize(values, colormap, symmetric=symmetric, percentile=percentile)
    if heat.shape[:2] != base.shape[:2]:
        heat = cv2.resize(heat, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
    return base, heat, cv2.addWeighted(base, 1.0 - alpha, heat, alpha, 0.0)


def overlay(image: torch.Tensor | np.ndarray, values: torch.Tensor | np.ndarray, *, alpha: float = 0.5,
            colormap: str = DEFAULT_COLORMAP, symmetric: bool = False, percentile: float = 100.0) -> np.ndarray:
    """Heatmap of ``values`` blended over ``image`` (resized to the image if needed)."""
    return overlay_parts(image, values, alpha=alpha, colormap=colormap, symmetric=symmetric,
                         percentile=percentile)[2]


def map_range(values: torch.Tensor | np.ndarray, *, symmetric: bool = False,
              percentile: float = 100.0) -> tuple[float, float]:
    """The values that :func:`normalize_map` sends to the ends of the colour scale.

    Example:
        >>> map_range(np.array([[0.0, 2.0], [1.0, 4.0]]))
        (0.0, 4.0)
    """
    array = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    array = np.nan_to_num(np.squeeze(array).astype(np.float32))
    if symmetric:
        top = float(np.percentile(np.abs(array), percentile))
        return -top, top
    return float(array.min()), float(np.percentile(array, percentile))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].

    Example:
        >>> nice_ticks(0.03, 0.97)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise CnnvizError("cannot draw non-finite values")
    if high <= low:
        high = low + (abs(low) or 1.0) * 0.1
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def colorbar(height: int, colormap: str = DEFAULT_COLORMAP, *, low: float = 0.0, high: float = 1.0,
             width: int = 18) -> np.ndarray:
    """A vertical colour scale, ``high`` at the top, with numbered ticks, ``(height, ~width + text, 3)``.

    Example:
        >>> colorbar(64, low=-0.5, high=0.5).shape[0]
        64
    """
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    bar = colorize(ramp, colormap)
    span = high - low if high > low else 1.0
    ticks = [t for t in nice_ticks(low, high, 4) if low - 1e-9 * span <= t <= high + 1e-9 * span] or [low, high]
    labels = [(f"{t:.3g}", height - 1 - round((t - low) / span * (height - 1))) for t in ticks]
    label_width = max(_text_size(text)[0] for text, _ in labels) + 8
    canvas = np.full((height, width + label_width, 3), 255, np.uint8)
    canvas[:, :width] = bar
    text_height = _text_size("0")[1]
    for text, y in labels:
        canvas[y, width:width + 3] = 0  # tick mark
        baseline = min(max(y + text_height // 2, text_height + 1), height - 2)
        _put_text(canvas, text, (width + 5, baseline))
    return canvas


FONT_SIZE = 11  # pixels: the size of the captions under 224 px panels


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans, which matplotlib ships (so every machine with cnnviz has it): Unicode captions."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), FONT_SIZE)
    except OSError:  # a matplotlib without its fonts: Pillow's own bitmap font
        return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    """Width and height (ascender to baseline) of ``text`` in pixels."""
    left, top, right, bottom = _font().getbbox(text, anchor="ls")
    return right - left, -top


def _put_text(canvas: np.ndarray, text: str, origin: tuple[int, int], color: Color = BLACK) -> None:
    """Draw ``text`` on ``canvas`` in place, its baseline starting at ``origin`` (x, y)."""
    picture = Image.fromarray(canvas)
    ImageDraw.Draw(picture).text(origin, text, fill=tuple(int(c) for c in color), font=_font(), anchor="ls")
    canvas[...] = np.asarray(picture)


def caption(image: np.ndarray, text: str, color: Color = BLACK) -> np.ndarray:
    """``image`` with ``text`` written in ``color`` in a white band below it (wrapped to the width).

    Captions are drawn in DejaVu Sans, so any Unicode text shows (class names such as "café", "μ").

    Example:
        >>> caption(np.zeros((10, 80, 3), np.uint8), "a cat", color=(200, 30, 30)).shape[0] > 10
        True
    """
    lines, current = [], ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and _text_size(trial)[0] > image.shape[1] - 6:
            lines.append(current)
            current = word
        else:
            current = trial
    lines.append(current)
    line_height = _text_size("Ag")[1] + 6
    band = np.full((line_height * len(lines) + 4, image.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines):
        _put_text(band, line, (3, line_height * (i + 1) - 2), color)
    return np.concatenate([to_uint8(image), band], axis=0)


def hstack(images: Sequence[np.ndarray], *, pad: int = 4) -> np.ndarray:
    """Images side by side, top-aligned on white, ``pad`` pixels apart."""
    if not images:
        raise CnnvizError("nothing to draw: no images given")
    images = [to_uint8(im) for im in images]
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + pad * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for im in images:
        canvas[: im.shape[0], x: x + im.shape[1]] = im
        x += im.shape[1] + pad
    return canvas


def grid(images: Sequence[np.ndarray | torch.Tensor], *, columns: int | None = None, pad: int = 2,
         scale: int = 1) -> np.ndarray:
    """Equal-sized images in a grid, enlarged ``scale`` times without blur (nearest)."""
    tiles = [to_uint8(im) for im in images]
    if not tiles:
        raise CnnvizError("nothing to draw: no images given")
    h, w = tiles[0].shape[:2]
    if any(t.shape[:2] != (h, w) for t in tiles):
        raise CnnvizError("grid tiles must share one size")
    columns = columns or int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / columns))
    h, w = h * scale, w * scale
    canvas = np.full((rows * h + (rows - 1) * pad, columns * w + (columns - 1) * pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        if scale != 1:
            tile = cv2.resize(tile, (w, h), interpolation=cv2.INTER_NEAREST)
        r, c = divmod(i, columns)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = tile
    return canvas


def vstack(images: Sequence[np.ndarray], *, pad: int = 6) -> np.ndarray:
    """Images one below the other, left-aligned on white."""
    images = [to_uint8(im) for im in images]
    width = max(im.shape[1] for im in images)
    canvas = np.full((sum(im.shape[0] for im in images) + pad * (len(images) - 1), width, 3), 255, np.uint8)
    y = 0
    for im in images:
        canvas[y:y + im.shape[0], :im.shape[1]] = im
        y += im.shape[0] + pad
    return canvas


def same_size(tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Tiles padded with white at the bottom and right to the largest one (captions may wrap)."""
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    out = []
    for tile in tiles:
        canvas = np.full((height, width, 3), 255, np.uint8)
        canvas[:tile.shape[0], :tile.shape[1]] = tile
        out.append(canvas)
    return out


def enlarge(image: np.ndarray, side: int = TILE) -> np.ndarray:
    """Scale an image so its longer side is at most ``side``: up by the largest whole factor
    that fits (nearest, no blur), down by area.

    Example:
        >>> enlarge(np.zeros((28, 28, 3), np.uint8), 224).shape
        (224, 224, 3)
    """
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest < side:
        factor = max(1, side // longest)
        return cv2.resize(image, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    if longest > side:
        return cv2.resize(image, (max(1, round(w * side / longest)), max(1, round(h * side / longest))),
                          interpolation=cv2.INTER_AREA)
    return image


def fit(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled into a ``side`` square (aspect kept), padded with white.

    Example:
        >>> fit(np.zeros((10, 20, 3), np.uint8), 64).shape
        (64, 64, 3)
    """
    image = enlarge(to_uint8(image), side)
    canvas = np.full((side, side, 3), 255, np.uint8)
    h, w = min(side, image.shape[0]), min(side, image.shape[1])
    canvas[:h, :w] = image[:h, :w]
    return canvas


def magnify(image: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel as a ``scale`` x ``scale`` block (for 28 px images beside their captions).

    Example:
        >>> magnify(np.zeros((2, 3, 3), np.uint8), 4).shape
        (8, 12, 3)
    """
    return np.kron(image, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else image


def captioned_grid(tiles: Sequence[np.ndarray], texts: Sequence[str], columns: int | None = None) -> np.ndarray:
    """Tiles with a caption each, in a grid."""
    return grid(same_size([caption(t, s) for t, s in zip(tiles, texts)]), columns=columns, pad=4)
