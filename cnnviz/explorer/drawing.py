"""PNG and NPY bytes of results, drawn with interpret.views (the explorer draws nothing itself).

Example:
    >>> import numpy as np
    >>> png(np.zeros((4, 4, 3), np.uint8))[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from cnnviz.interpret.views import colorize, explanation_panel, pixels, to_uint8

CONSTANT_WIDTH = 40  # pixels: the swatch of a map of one value, wide enough for its label


def png(picture: np.ndarray) -> bytes:
    """A uint8 ``(H, W)`` or ``(H, W, 3)`` picture as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes, as :func:`zoo.save_array` writes them."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def image_png(image: np.ndarray, side: int = 224) -> bytes:
    """A ``(C, H, W)`` image in [0, 1], enlarged without blur when smaller than ``side``."""
    picture = to_uint8(torch.from_numpy(image))
    return png(pixels.enlarge(picture, side) if max(picture.shape[:2]) < side else picture)


def panel_png(image: np.ndarray, flat: np.ndarray, title: str, marked: np.ndarray | None = None) -> bytes:
    """The PNG ``cnnviz explain`` writes: image | map | overlay | colour bar, captioned (a dense model's image
    with what is explained drawn on it first)."""
    return png(explanation_panel(torch.from_numpy(image), torch.from_numpy(flat), title, marked=marked))


def marked_png(marked: np.ndarray, side: int = 224) -> bytes:
    """A dense model's image with its explained region or boxes drawn, enlarged without blur."""
    return png(pixels.enlarge(marked, side) if max(marked.shape[:2]) < side else marked)


def heat_png(image: np.ndarray, flat: np.ndarray, side: int = 224, percentile: float = 99.5) -> bytes:
    """The map's heatmap at the image's size, to lay over the image with an opacity slider (a signed map about
    zero on the diverging scale, as the panel's)."""
    colormap, symmetric = pixels.scale_of(flat)
    _, heat, _ = pixels.overlay_parts(torch.from_numpy(image), torch.from_numpy(flat), colormap=colormap,
                                      symmetric=symmetric, percentile=percentile)
    return png(pixels.enlarge(heat, side) if max(heat.shape[:2]) < side else heat)


def colorbar_png(flat: np.ndarray, height: int = 224, percentile: float = 99.5) -> bytes:
    """The numbered colour bar of the map's values, as the panel's (a diverging scale for a signed map); a map of
    one value (all zero) gets the one colour it is drawn in, labelled with that value, not a made-up range.

    Example:
        >>> bar = np.asarray(Image.open(io.BytesIO(colorbar_png(np.zeros((8, 8))))))
        >>> len(np.unique(bar[:224].reshape(-1, 3), axis=0))  # one colour, then the label "all 0"
        1
    """
    colormap, symmetric = pixels.scale_of(flat)
    low, high = pixels.map_range(flat, symmetric=symmetric, percentile=percentile)
    if high <= low:
        swatch = colorize(np.full((height, CONSTANT_WIDTH), low, np.float32))
        return png(pixels.caption(swatch, f"all {low:.3g}"))
    return png(pixels.colorbar(height, colormap, low=low, high=high))


def map_png(values: np.ndarray, side: int = 96) -> bytes:
    """A single map (a channel's activation or evidence) coloured on its own scale."""
    picture = colorize(torch.from_numpy(values))
    return png(pixels.enlarge(picture, side) if max(picture.shape[:2]) < side else picture)


def item_png(image: np.ndarray, values: np.ndarray, side: int = 112) -> bytes:
    """An audited item: its ``(C, H, W)`` image with its downsized map laid over it, scaled to ``side``.

    Example:
        >>> picture = Image.open(io.BytesIO(item_png(np.zeros((1, 28, 28)), np.eye(7))))
        >>> picture.size
        (112, 112)
    """
    blended = pixels.overlay(torch.from_numpy(np.asarray(image, np.float32)), np.asarray(values, np.float32))
    return png(pixels.enlarge(blended, side))


def crop_png(image: np.ndarray, box: tuple[int, int, int, int], side: int = 64) -> bytes:
    """The part ``box`` (``left, top, right, bottom`` in pixels) of a ``(C, H, W)`` image, scaled to ``side``."""
    left, top, right, bottom = box
    return png(pixels.enlarge(to_uint8(torch.from_numpy(np.asarray(image[:, top:bottom, left:right], np.float32))),
                              side))
