"""Images as requests name them: a shipped sample (``"chelsea"``), an item of ``--data`` (``"data:12"``) or an
uploaded file. A request never names a path on the server, so no route reads a file it was not given.

An upload is decoded once, bounded (its bytes before reading, its pixels from the header before decoding), and
kept downscaled to what the served models need (:func:`upload_side`) as a PNG in the cache folder, named by its
content's hash: it survives the result cache's pressure and restarts, so its URL keeps working.

Example:
    >>> image_names()[:2]
    ['chelsea', 'coffee']
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps, PngImagePlugin
from torch.utils.data import Dataset

from cnnviz import zoo
from cnnviz.explorer.errors import NotFound, TooLarge
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.data import pillow_refusals
from cnnviz.zoo.handle import ModelHandle

MAX_UPLOAD_BYTES = 16 * 2**20  # declared limit of an uploaded image; larger requests get 413
MAX_UPLOAD_PIXELS = 40_000_000  # declared limit of its pixels (a 24 MP photo, 6000 x 6000), read from the header
MIN_UPLOAD_SIDE = 512  # an upload with a shorter side up to this is kept as sent: its map is the file's
LONG_SIDE = 4  # a strip longer than this many times its width is kept as its centre (prepare reads no more)
DATA_PREFIX = "data:"
UPLOAD_PREFIX = "upload:"
HASH_LENGTH = 24
UPLOAD_NAME = re.compile(f"{UPLOAD_PREFIX}[0-9a-f]{{{HASH_LENGTH}}}")
ORIGINAL_SIZE = "cnnviz-original-size"  # the PNG text chunk holding the original's WIDTHxHEIGHT


def image_names() -> list[str]:
    """The sample photos and scenes a request may name."""
    return [*zoo.sample_names(), *zoo.scene_names()]


def named_image(name: object, data: Dataset | None, channels: int) -> torch.Tensor:
    """The image a request names: a sample or ``data:INDEX``; anything else, paths included, is refused."""
    if not isinstance(name, str) or not name:
        raise CnnvizError('image must be a sample name such as "chelsea", "data:INDEX", or an uploaded file')
    if name.startswith(DATA_PREFIX):
        if data is None:
            raise CnnvizError(f"no data set is served, so {name!r} names nothing: start with --data DIR|fashion-mnist")
        index = name[len(DATA_PREFIX):]
        if not index.isdigit() or int(index) >= len(data):
            raise CnnvizError(f"{name!r}: the data set has items data:0 to data:{len(data) - 1}")
        return zoo.load_image(data[int(index)], channels=channels)
    if name not in image_names():
        raise CnnvizError(f"unknown image {name!r}{zoo.core.closest(name, image_names())}; samples: "
                          f"{', '.join(image_names())} (or upload a file)")
    return zoo.load_image(name, channels=channels)


@dataclass(frozen=True)
class Upload:
    """An upload as it is kept: its name, the original's size and the size kept, both ``(width, height)``."""

    name: str
    size: tuple[int, int]
    kept: tuple[int, int]


def upload_side(handles: Iterable[ModelHandle]) -> int:
    """The shorter side an upload is kept at (at most): twice the largest resize of the served models (room for
    their resize and crop), and at least :data:`MIN_UPLOAD_SIDE`."""
    return max(MIN_UPLOAD_SIDE, *(2 * h.resize_size for h in handles))


def kept_size(width: int, height: int, side: int) -> tuple[int, int]:
    """``(width, height)`` scaled down (never up) so the shorter side is at most ``side``.

    Example:
        >>> kept_size(6000, 4000, 512), kept_size(300, 200, 512)
        ((768, 512), (300, 200))
    """
    scale = min(1.0, side / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def kept_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The part of an image that is kept: all of it, or the centre of a strip longer than :data:`LONG_SIDE` times
    its width (``handle.prepare`` reads only a strip's centre square).

    Example:
        >>> kept_box(300, 200), kept_box(1000, 100)
        ((0, 0, 300, 200), (300, 0, 700, 100))
    """
    short = min(width, height)
    keep_w, keep_h = min(width, LONG_SIDE * short), min(height, LONG_SIDE * short)
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return left, top, left + keep_w, top + keep_h


def _decoded(content: bytes, side: int) -> tuple[Image.Image, tuple[int, int]]:
    """The upload decoded, upright and scaled to :func:`kept_size`, with the original's upright size. The header
    is checked before any pixel is decoded, and a JPEG is decoded at 1/2, 1/4 or 1/8 scale where that suffices."""
    with pillow_refusals("the upload"), Image.open(io.BytesIO(content)) as image:
        width, height = image.size
        if width * height > MAX_UPLOAD_PIXELS:
            raise CnnvizError(f"the upload declares {width} x {height} pixels, more than the "
                              f"{MAX_UPLOAD_PIXELS:,} accepted: downscale it first")
        image.draft(None, kept_size(width, height, side))
        image.load()
        before = image.size
        ImageOps.exif_transpose(image, in_place=True)  # a camera's orientation tag: upright, as load_image
        turned = image.size != before
        if image.mode not in ("1", "L", "RGB", "RGBA", "LA", "I", "I;16", "F"):
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode == "1":
            image = image.convert("L")
        size = (height, width) if turned else (width, height)
        box = kept_box(*image.size)
        target = kept_size(box[2] - box[0], box[3] - box[1], side)
        if target == image.size:
            return image.copy(), size
        return image.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0), size


def keep_upload(content: bytes, folder: Path, side: int) -> Upload:
    """Decode an upload once (bounded) and keep it in ``folder`` as an 8-bit PNG named by the content's hash,
    at most :func:`kept_size` (of its :func:`kept_box`); an upload already kept (large enough for ``side``) is not
    decoded again. Its name is ``upload:HASH``.

    Example:
        >>> import tempfile
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (3000, 2000)).save(buffer, format="PNG")
        >>> kept = keep_upload(buffer.getvalue(), Path(tempfile.mkdtemp()), 512)
        >>> kept.name.startswith(UPLOAD_PREFIX), kept.size, kept.kept
        (True, (3000, 2000), (768, 512))
    """
    if len(content) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"the upload is {len(content):,} bytes, more than the {MAX_UPLOAD_BYTES:,} accepted")
    if not content:
        raise CnnvizError("the upload is empty: send an image file")
    digest = hashlib.sha256(content).hexdigest()[:HASH_LENGTH]
    path = folder / f"{digest}.png"
    if path.is_file():
        kept = upload_of(UPLOAD_PREFIX + digest, folder)
        if min(kept.kept) >= min(side, *kept.size):  # else kept by a server whose models needed less: again
            return kept
    image, size = _decoded(content, side)
    picture = zoo.load_image(image).mul(255).round().to(torch.uint8)  # its modes, alpha over white, as a file's
    pixels = picture[0].numpy() if picture.shape[0] == 1 else picture.permute(1, 2, 0).numpy()
    info = PngImagePlugin.PngInfo()
    info.add_text(ORIGINAL_SIZE, f"{size[0]}x{size[1]}")
    zoo.atomic_write(path, lambda f: Image.fromarray(pixels).save(f, format="PNG", pnginfo=info))
    return Upload(UPLOAD_PREFIX + digest, size, image.size)


def _kept_path(name: str, folder: Path) -> Path:
    """The file of ``upload:HASH`` (the name checked to be one, so never a path a request makes up)."""
    path = folder / f"{name[len(UPLOAD_PREFIX):]}.png"
    if not UPLOAD_NAME.fullmatch(name) or not path.is_file():
        raise NotFound(f"{name!r} names no kept upload: upload the file again (POST /api/upload)")
    return path


def upload_of(name: str, folder: Path) -> Upload:
    """What is kept under ``upload:HASH``: the original's size (from the PNG's text) and the size kept."""
    with Image.open(_kept_path(name, folder)) as kept:
        width, _, height = kept.text.get(ORIGINAL_SIZE, "").partition("x")
        size = (int(width), int(height)) if width.isdigit() and height.isdigit() else kept.size
        return Upload(name, size, kept.size)


def kept_upload(name: str, folder: Path, channels: int | None) -> torch.Tensor:
    """The image kept under ``upload:HASH``."""
    return zoo.load_image(_kept_path(name, folder), channels=channels)
