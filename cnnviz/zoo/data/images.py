"""Reading images from files, folders and scikit-image samples; writing PNGs atomically.

Every loaded image is a float ``(C, H, W)`` tensor in [0, 1] at its own size,
with C = 1 (gray) or 3 (RGB); models resize it with ``handle.prepare``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.core.files import atomic_write

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
# The most pixels an image file may declare in its header: checked before decoding, so a small file
# that claims to be 20000 x 20000 (a decompression bomb) is refused instead of filling memory.
MAX_PIXELS = 64_000_000


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        from skimage import data  # imported lazily: it is slow to import

        image = getattr(data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo pairs: left view

    return read


SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    name: _skimage(source)
    for name, source in {
        "chelsea": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket",
        "motorcycle": "stereo_motorcycle", "horse": "horse", "camera": "camera", "coins": "coins",
        "moon": "moon", "page": "page", "text": "text", "hubble": "hubble_deep_field",
        "retina": "retina", "colorwheel": "colorwheel", "brick": "brick", "grass": "grass",
        "gravel": "gravel", "immunohistochemistry": "immunohistochemistry", "logo": "logo",
        "cat": "cat",
    }.items()
}


# Four 64 px Fashion-MNIST scenes (zoo.data.scenes, pasted from its test split, held out from fashion_seg and
# fashion_det), shipped so the dense models have something to explain without the dataset:
# scene1 Shirt, Coat, Bag; scene2 T-shirt/top, Trouser, Shirt; scene3 Trouser, Dress, Pullover;
# scene4 Sandal, Pullover, Sneaker.
SCENES_DIR = Path(__file__).resolve().parents[1] / "samples"


def _scene(path: Path) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))

    return read


SCENES: dict[str, Callable[[], np.ndarray]] = {path.stem: _scene(path)
                                               for path in sorted(SCENES_DIR.glob("scene*.png"))}


def sample_names() -> list[str]:
    """Names of the photos that ship with scikit-image, usable wherever a path is."""
    return list(SAMPLES)


def scene_names() -> list[str]:
    """Names of the shipped Fashion-MNIST scenes, usable wherever a path is (for ``fashion_seg``/``fashion_det``).

    Example:
        >>> load_image("scene4").shape  # a Sandal, a Pullover and a Sneaker, 64 px gray
        torch.Size([1, 64, 64])
    """
    return list(SCENES)


def array_to_tensor(array: np.ndarray, *, bands: bool = False) -> torch.Tensor:
    """A ``(H, W)``/``(H, W, C)`` array (uint8, uint16, bool or float) as a (C, H, W) tensor in [0, 1].

    A fourth channel is alpha, composited over white, unless ``bands``: then every channel is kept
    (multi-band images for models that take 4 or more channels).
    """
    if array.size == 0:
        raise CnnvizError(f"the image array is empty (shape {array.shape})")
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0:
            raise CnnvizError(f"the integer image has negative values (down to {array.min()}): "
                              "give values from 0 up, or floats in [0, 1]")
        array = array.astype(np.float32) / max(float(array.max()), 1.0)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise CnnvizError("the image has NaN or infinite values: give finite pixel values in [0, 1]")
        array = np.clip(array.astype(np.float32), 0.0, 1.0)
    else:
        raise CnnvizError(f"an image array holds numbers, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] < 1 or (array.shape[2] not in (1, 3, 4) and not bands):
        raise CnnvizError(f"an image array must be (H, W) or (H, W, 1|3|4), got {array.shape}")
    if array.shape[2] == 4 and not bands:  # composite over white, as a viewer would show it
        alpha = array[:, :, 3:]
        array = array[:, :, :3] * alpha + (1.0 - alpha)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image of any mode, EXIF-rotated upright, as a (C, H, W) tensor in [0, 1]."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return array_to_tensor(np.asarray(image, dtype=np.uint16))
    if image.mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        return array_to_tensor((array / top).astype(np.float32))
    if image.mode in ("1", "L"):
        return array_to_tensor(np.asarray(image.convert("L")))
    if image.mode in ("LA", "RGBA", "PA") or "transparency" in image.info:
        return array_to_tensor(np.asarray(image.convert("RGBA")))
    return array_to_tensor(np.asarray(image.convert("RGB")))


def load_image(source: str | Path | Image.Image | np.ndarray | torch.Tensor, *,
               channels: int | None = None) -> torch.Tensor:
    """One image from a path, a sample name, a PIL image, an array, a ``.npy`` file or a tensor.

    Args:
        source: what to read.
        channels: the channels the model takes; with 4 or more, a fourth channel is a band
            (RGBA files, ``.npy`` arrays ``(H, W, C)``) rather than alpha.

    Example:
        >>> load_image("chelsea").shape
        torch.Size([3, 300, 451])
    """
    bands = channels is not None and channels >= 4
    if isinstance(source, torch.Tensor):
        if source.dim() == 2:
            source = source[None]
        if source.dim() != 3 or (source.shape[0] not in (1, 3) and not bands) or source.numel() == 0:
            raise CnnvizError(f"an image tensor must be (1|3, H, W), got {tuple(source.shape)}")
        if not source.dtype.is_floating_point:
            raise CnnvizError(f"an image tensor must be float in [0, 1], got {source.dtype}: divide by 255")
        if not torch.isfinite(source).all():
            raise CnnvizError("the image has NaN or infinite values: give finite pixel values in [0, 1]")
        return source.float().clamp(0, 1)
    if isinstance(source, np.ndarray):
        return array_to_tensor(source, bands=bands)
    if isinstance(source, Image.Image):
        return pil_to_tensor(source)
    if not isinstance(source, (str, Path)):
        raise CnnvizError(f"an image is a path, a sample name, a PIL image, an array or a tensor, "
                          f"got {type(source).__name__}")
    named = {**SAMPLES, **SCENES}
    if isinstance(source, str) and source in named and not Path(source).exists():
        return array_to_tensor(named[source]())
    path = Path(source)
    if not path.exists():
        raise CnnvizError(
            f"no image {str(source)!r}: give a file, a folder, or a sample name"
            f"{closest(str(source), named) or ' (' + ', '.join(list(SAMPLES)[:6]) + ', ..., scene1-4)'}"
        )
    if path.is_dir():
        raise CnnvizError(f"{path} is a folder: use load_images for folders")
    if not path.is_file():  # a FIFO would block forever, a device never end
        raise CnnvizError(f"{path} is not a regular file (a pipe, device or socket): give an image file")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r")  # the header only, until read
        except (OSError, ValueError) as exc:
            raise CnnvizError(f"{path} is not a numpy array file ({exc})") from None
        if array.ndim < 2 or array.shape[0] * array.shape[1] > MAX_PIXELS:
            raise CnnvizError(f"{path} holds an array of shape {array.shape}: an image is (H, W) or (H, W, C) "
                              f"with at most {MAX_PIXELS:,} pixels")
        array = np.asarray(array)
        return array_to_tensor(array, bands=bands)
    with pillow_refusals(str(path)), Image.open(path) as image:
        width, height = image.size  # from the header: nothing decoded yet
        if width * height > MAX_PIXELS:
            raise CnnvizError(f"{path} declares {width} x {height} pixels, more than the {MAX_PIXELS:,} "
                              "cnnviz decodes: downscale it first")
        image.load()
        if bands and image.mode == "RGBA":
            return array_to_tensor(np.asarray(image), bands=True)
        return pil_to_tensor(image)


@contextmanager
def pillow_refusals(what: str) -> Iterator[None]:
    """Pillow's errors while reading ``what`` (a path, "the upload") as one :class:`CnnvizError` line: a
    decompression bomb, or a file Pillow cannot read. A CnnvizError raised inside passes unchanged.

    Example:
        >>> import io
        >>> with pillow_refusals("the upload"):  # doctest: +ELLIPSIS
        ...     Image.open(io.BytesIO(b"not an image"))
        Traceback (most recent call last):
        ...
        cnnviz.CnnvizError: the upload is not an image Pillow can read (UnidentifiedImageError): give a PNG, ...
    """
    try:
        yield
    except Image.DecompressionBombError:
        raise CnnvizError(f"{what} declares more pixels than Pillow decodes safely (a decompression bomb): "
                          "downscale it first") from None
    except CnnvizError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CnnvizError(f"{what} is not an image Pillow can read ({type(exc).__name__}): "
                          "give a PNG, JPEG, BMP, TIFF or WebP file") from None


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[str | Path]:
    """Folders replaced by their image files (sorted); other sources kept."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    expanded: list[str | Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise CnnvizError(f"the folder {path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            expanded.extend(files)
        else:
            expanded.append(source)
    if not expanded:
        raise CnnvizError("no images given: pass a file, a folder or a sample name such as chelsea")
    return expanded


def load_images(sources: str | Path | Sequence[str | Path], *,
                channels: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """``(name, image)`` pairs for files, folders (every image inside) and sample names.

    Example:
        >>> [name for name, _ in load_images(["chelsea", "coffee"])]
        ['chelsea', 'coffee']
    """
    return [(Path(str(s)).stem, load_image(s, channels=channels)) for s in expand_sources(sources)]


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)`` or ``(H, W, 3|4)`` array as PNG (or by suffix), atomically."""
    if image.dtype != np.uint8:
        raise CnnvizError(f"save_image takes uint8 arrays, got {image.dtype}: render the map first")
    image_format = (Path(path).suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
    return atomic_write(path, lambda f: Image.fromarray(image).save(f, format=image_format))


def save_array(path: str | Path, array: np.ndarray | torch.Tensor) -> Path:
    """Write an array as ``.npy``, atomically."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return atomic_write(path, lambda f: np.save(f, array))
