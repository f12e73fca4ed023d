"""Images as requests name them: a shipped sample (``"chelsea"``), an item of ``--data`` (``"data:12"``) or an
uploaded file. A request never names a path on the server, so no route reads a file it was not given.

Uploads are decoded with :func:`zoo.load_image`'s checks (not an image, decompression bomb, too many
pixels) from a private file in the cache folder, removed at once; their size is capped before reading.

Example:
    >>> image_names()[:2]
    ['chelsea', 'coffee']
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cnnviz import zoo
from cnnviz.explorer.errors import TooLarge
from cnnviz.zoo.core import CnnvizError

MAX_UPLOAD_BYTES = 16 * 2**20  # declared limit of an uploaded image; larger requests get 413
DATA_PREFIX = "data:"


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


def uploaded_image(content: bytes, suffix: str, folder: Path, channels: int | None) -> torch.Tensor:
    """Decode uploaded bytes; errors speak of "the upload", never of the private file."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"the upload is {len(content):,} bytes, more than the {MAX_UPLOAD_BYTES:,} accepted")
    if not content:
        raise CnnvizError("the upload is empty: send an image file")
    folder.mkdir(parents=True, exist_ok=True)
    safe_suffix = suffix.lower() if suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp",
                                                       ".gif"} else ".img"
    fd, name = tempfile.mkstemp(prefix=".upload-", suffix=safe_suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        return zoo.load_image(name, channels=channels)
    except CnnvizError as exc:
        raise CnnvizError(str(exc).replace(name, "the upload")) from None
    finally:
        Path(name).unlink(missing_ok=True)
