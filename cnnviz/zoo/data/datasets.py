"""Datasets as tensors: Fashion-MNIST and MNIST from IDX files, image folders; splits, statistics, augmentation.

Everything is held as ``uint8`` tensors (60k Fashion-MNIST images are 47 MB)
and batched by indexing, on the training device, with no DataLoader workers:
on a 2-core CPU that is much faster than decoding per sample.

The order of operations is the textbook's: split train/validation first, then
compute the normalization statistics on the training split only, so nothing
about the validation or test images leaks into training.

Example:
    >>> splits = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)  # doctest: +NEEDS_FASHION_MNIST
    >>> splits.train.images.shape, splits.classes[9]
    (torch.Size([54000, 1, 28, 28]), 'Ankle boot')
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cnnviz.zoo.core.errors import CnnvizError, closest

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Fashion-MNIST's training images, for the untrained zoo entries (a trained model reads its own from its log).
FASHION_MEAN, FASHION_STD = (0.286,), (0.353,)
MNIST_CLASSES = [str(digit) for digit in range(10)]


@dataclass(frozen=True)
class Augment:
    """Random label-preserving transforms, applied to whole batches in one resampling.

    Attributes:
        shift: largest translation, as a fraction of the side (rounded to whole
            pixels so a pure shift does not blur).
        rotate: largest rotation in degrees.
        zoom: largest relative scale change (0.1: 90% to 110%).
        hflip: mirror half the images left-right (only where that keeps the
            label: clothes yes, digits no).
        padding: what shifted-in pixels are: ``"zeros"`` (dark background, as
            in MNIST) or ``"border"`` (repeat the edge, for photos).

    Example:
        >>> Augment(shift=0.1, hflip=True).active
        True
    """

    shift: float = 0.0
    rotate: float = 0.0
    zoom: float = 0.0
    hflip: bool = False
    padding: str = "zeros"

    @property
    def active(self) -> bool:
        """Whether any transform is on."""
        return bool(self.shift or self.rotate or self.zoom or self.hflip)


NO_AUGMENT = Augment()


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: where its files usually are, its classes and its safe augmentation."""

    name: str
    default_dir: Path
    classes: list[str]
    augment: Augment
    install_hint: str


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", Path("/usr/share/datasets/fashion-mnist"), FASHION_MNIST_CLASSES,
        Augment(shift=0.07, hflip=True),  # up to 2 px; a mirrored shirt is still a shirt
        "install it with: apt-get install dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec(
        "mnist", Path("/usr/share/datasets/mnist"), MNIST_CLASSES,
        Augment(shift=0.1, rotate=10.0, zoom=0.1),  # no flips: a mirrored 2 is no digit
        "download the four IDX files from http://yann.lecun.com/exdb/mnist/",
    ),
}


@dataclass
class TensorData:
    """Images and labels held in memory.

    Attributes:
        images: ``uint8`` ``(N, C, H, W)``.
        labels: ``int64`` ``(N,)``.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.shape[0] != self.labels.shape[0]:
            raise CnnvizError(f"{self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | slice) -> TensorData:
        """The examples at ``index``."""
        return TensorData(self.images[index], self.labels[index])

    def to(self, device: torch.device | str) -> TensorData:
        """The same data on ``device`` (still ``uint8``)."""
        return TensorData(self.images.to(device), self.labels.to(device))


@dataclass
class Splits:
    """A dataset split for training, with what a model needs to know about it.

    Attributes:
        name: dataset name (``"fashion-mnist"``, or the folder's name).
        train, val: the training and validation splits.
        test: the official test set, when the dataset has one.
        classes: class names, index-aligned with the labels.
        mean, std: per-channel statistics of ``train`` in [0, 1] units.
        augment: the transforms that keep this dataset's labels.
    """

    name: str
    train: TensorData
    val: TensorData
    test: TensorData | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment

    @property
    def channels(self) -> int:
        """Image channels (1 or 3)."""
        return int(self.train.images.shape[1])

    @property
    def input_size(self) -> int:
        """Image side."""
        return int(self.train.images.shape[-1])


# ---------------------------------------------------------------- IDX files

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (raw or gzip-compressed) as an array.

    IDX is LeCun's format: two zero bytes, a type code, the number of
    dimensions, one big-endian int32 per dimension, then the data.

    Example:
        >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +NEEDS_FASHION_MNIST
        (10000,)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise CnnvizError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise CnnvizError(f"{path} is not an IDX file (bad magic number): give the original *-ubyte files")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise CnnvizError(f"{path} is truncated: header says {shape} ({expected} bytes), "
                          f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file, gzipped if ``path`` ends in .gz.

    Example:
        >>> path = write_idx("/tmp/labels-idx1-ubyte.gz", np.arange(3, dtype=np.uint8))
        >>> read_idx(path).tolist()
        [0, 1, 2]
    """
    path = Path(path)
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k
             for k, v in _IDX_DTYPES.items()}
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in codes:
        raise CnnvizError(f"IDX files hold uint8, int8, int16, int32, float32 or float64, not {array.dtype}")
    header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as handle:
        handle.write(payload)
    return path


def synthetic(n: int, *, size: int = 28, classes: int = 4, noise: float = 0.15, seed: int = 0) -> TensorData:
    """A learnable toy dataset: class k is a bright square at the k-th of ``classes`` spots on a ring, plus noise.

    For tests and demos that must run without any dataset installed.

    Example:
        >>> data = synthetic(8, size=16, classes=4)
        >>> data.images.shape, data.labels.tolist()[:4]
        (torch.Size([8, 1, 16, 16]), [0, 1, 2, 3])
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.rand(n, 1, size, size, generator=generator) * noise
    half, side = size / 2, max(2, size // 5)
    for k in range(classes):
        angle = 2 * math.pi * k / classes
        cy = round(half + 0.55 * half * math.sin(angle) - side / 2)
        cx = round(half + 0.55 * half * math.cos(angle) - side / 2)
        jitter = torch.randint(-1, 2, (2,), generator=generator).tolist()
        y0, x0 = min(max(cy + jitter[0], 0), size - side), min(max(cx + jitter[1], 0), size - side)
        images[labels == k, :, y0:y0 + side, x0:x0 + side] += 0.8
    pixels = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return TensorData(pixels, labels.long())


def _find_idx(directory: Path, split: str, kind: str) -> Path | None:
    # The official names are 'train-images-idx3-ubyte'; some mirrors use a dot.
    dims = 3 if kind == "images" else 1
    for stem in (f"{split}-{kind}-idx{dims}-ubyte", f"{split}-{kind}.idx{dims}-ubyte"):
        for suffix in (".gz", ""):
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def has_idx_files(directory: str | Path) -> bool:
    """Whether ``directory`` holds the training images of an IDX dataset."""
    return _find_idx(Path(directory), "train", "images") is not None


def read_idx_split(directory: str | Path, split: str = "train") -> TensorData:
    """The ``train`` or ``t10k`` (test) split of an IDX dataset in ``directory``.

    Example:
        >>> read_idx_split("/usr/share/datasets/fashion-mnist", "t10k").images.shape  # doctest: +NEEDS_FASHION_MNIST
        torch.Size([10000, 1, 28, 28])
    """
    directory = Path(directory)
    paths = [_find_idx(directory, split, kind) for kind in ("images", "labels")]
    if paths[0] is None or paths[1] is None:
        raise CnnvizError(f"no {split}-images-idx3-ubyte[.gz] and {split}-labels-idx1-ubyte[.gz] in {directory}")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or images.dtype != np.uint8:
        raise CnnvizError(f"{paths[0]} should hold (N, H, W) uint8 images and {paths[1]} (N,) labels")
    return TensorData(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


# ---------------------------------------------------------------- image folders

def read_image_folder(directory: str | Path, image_size: int = 32, *,
                      progress: bool = True) -> tuple[TensorData, list[str]]:
    """Images in ``directory/CLASS/*.png`` (the ImageFolder layout), resized to a square.

    Gray if every image is gray, else RGB. Returns the data and the class
    names (the sub-folder names, sorted).

    Example:
        >>> data, classes = read_image_folder("my-photos", image_size=64)  # doctest: +SKIP
    """
    from torchvision.datasets import ImageFolder  # only to list files and classes

    from cnnviz.zoo.handle.handle import match_channels
    from cnnviz.zoo.data.images import IMAGE_SUFFIXES, load_image

    try:
        folder = ImageFolder(str(directory), is_valid_file=lambda p: Path(p).suffix.lower() in IMAGE_SUFFIXES)
    except (FileNotFoundError, RuntimeError) as exc:
        raise CnnvizError(f"{directory} is not a folder of class sub-folders with images ({exc})") from None
    if len(folder.classes) < 2:
        raise CnnvizError(f"{directory} has {len(folder.classes)} class folder(s): a classifier needs two or more")
    images = [load_image(path) for path, _ in tqdm(folder.samples, desc="reading images", disable=not progress)]
    channels = 1 if all(im.shape[0] == 1 for im in images) else 3
    batch = torch.stack([
        F.interpolate(match_channels(im, channels)[None], size=(image_size, image_size), mode="bilinear",
                      antialias=True, align_corners=False)[0]
        for im in images])
    pixels = (batch.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return TensorData(pixels, torch.tensor(folder.targets, dtype=torch.int64)), list(folder.classes)


# ---------------------------------------------------------------- splits and statistics

def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)`` into training and validation indices.

    Example:
        >>> train, val = split_indices(10, 0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise CnnvizError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    if val_fraction > 0 and (n_val == 0 or n_val == n):
        raise CnnvizError(f"{n} examples are too few to hold out {val_fraction:.0%} for validation")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``uint8`` images, in [0, 1] units.

    Computed in float64 over every pixel of every image.

    Example:
        >>> channel_stats(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
        ((0.5,), (0.5,))
    """
    if len(images) == 0:
        raise CnnvizError("no images to compute statistics on")
    pixels = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255.0
    mean = pixels.mean(1)
    std = pixels.std(1, unbiased=False).clamp_min(1e-6)
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def load_dataset(source: str | Path, *, val_fraction: float = 0.1, seed: int = 0, data_dir: str | Path | None = None,
                 image_size: int = 32, progress: bool = True) -> Splits:
    """A named dataset or a folder, split into train/validation(/test) with training-split statistics.

    Args:
        source: ``"fashion-mnist"``, ``"mnist"``, a folder of IDX files, or an
            image folder (one sub-folder per class).
        val_fraction: share of the training data held out for validation.
        seed: seeds the split.
        data_dir: where a named dataset's IDX files are, if not the default.
        image_size: side images from an image folder are resized to.
        progress: show a progress bar while reading an image folder.

    Example:
        >>> splits = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)  # doctest: +NEEDS_FASHION_MNIST
        >>> len(splits.train), len(splits.val), len(splits.test)
        (54000, 6000, 10000)
    """
    spec, directory = _locate(source, data_dir)
    test: TensorData | None = None
    if has_idx_files(directory):
        full = read_idx_split(directory, "train")
        if _find_idx(directory, "t10k", "images") is not None:
            test = read_idx_split(directory, "t10k")
        classes = spec.classes if spec else _idx_classes(directory, full)
        augment = spec.augment if spec else NO_AUGMENT
        name = spec.name if spec else directory.name
    else:
        full, classes = read_image_folder(directory, image_size, progress=progress)
        augment = Augment(shift=0.1, rotate=10.0, zoom=0.1, hflip=True, padding="border")
        name = directory.name
    if int(full.labels.max()) >= len(classes) or int(full.labels.min()) < 0:
        raise CnnvizError(f"labels in {directory} run from {int(full.labels.min())} to {int(full.labels.max())} "
                          f"but there are {len(classes)} classes")
    train_index, val_index = split_indices(len(full), val_fraction, seed)
    train, val = full.subset(train_index), full.subset(val_index)
    mean, std = channel_stats(train.images)  # training split only: validation and test stay unseen
    return Splits(name, train, val, test, classes, mean, std, augment)


def _locate(source: str | Path, data_dir: str | Path | None) -> tuple[DatasetSpec | None, Path]:
    key = str(source).lower()
    if key in DATASETS:
        spec = DATASETS[key]
        directory = Path(data_dir) if data_dir is not None else spec.default_dir
        if not has_idx_files(directory):
            raise CnnvizError(f"{spec.name} is not in {directory}: {spec.install_hint}, "
                              f"or give the folder holding its *-ubyte.gz files with --data-dir DIR")
        return spec, directory
    directory = Path(source)
    if not directory.is_dir():
        raise CnnvizError(f"no dataset {str(source)!r}: give {' or '.join(DATASETS)}, or a folder of IDX files "
                          f"or of class sub-folders{closest(key, DATASETS)}")
    return None, directory


def _idx_classes(directory: Path, data: TensorData) -> list[str]:
    # A bare IDX folder says nothing about its classes; its name usually does.
    if "fashion" in directory.name.lower():
        return FASHION_MNIST_CLASSES
    return [str(i) for i in range(int(data.labels.max()) + 1)]


# ---------------------------------------------------------------- batches

def augment_batch(images: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """Randomly shift, rotate, zoom and flip a float batch ``(B, C, H, W)``, all in one resampling.

    The random draws come from ``generator`` (on the CPU), so a seeded
    generator gives the same batch on any device.

    Example:
        >>> out = augment_batch(torch.rand(4, 1, 28, 28), Augment(shift=0.1), torch.Generator().manual_seed(0))
        >>> out.shape
        torch.Size([4, 1, 28, 28])
    """
    if not augment.active:
        return images
    b, _, h, w = images.shape
    draws = torch.rand(b, 5, generator=generator, dtype=torch.float64)
    angle = (draws[:, 0] * 2 - 1) * math.radians(augment.rotate)
    scale = 1.0 + (draws[:, 1] * 2 - 1) * augment.zoom
    flip = torch.where(draws[:, 2] < 0.5, -1.0, 1.0) if augment.hflip else torch.ones(b, dtype=torch.float64)
    # Whole-pixel shifts; in grid units (-1..1) one pixel is 2 / side.
    max_dx, max_dy = round(augment.shift * w), round(augment.shift * h)
    dx = torch.round((draws[:, 3] * 2 - 1) * max_dx) * 2 / w
    dy = torch.round((draws[:, 4] * 2 - 1) * max_dy) * 2 / h
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, dx], 1), torch.stack([sin * flip, cos, dy], 1)], 1)
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=augment.padding, align_corners=False)


def batches(data: TensorData, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
            augment: Augment = NO_AUGMENT, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Float batches in [0, 1] and their labels, on the data's device.

    Args:
        data: ``uint8`` images (move them to the device once, beforehand).
        batch_size: examples per batch.
        shuffle: visit the examples in a random order drawn from ``generator``.
        generator: a seeded CPU generator for order and augmentation.
        augment: transforms to apply to every batch.
        drop_last: skip a final incomplete batch (batch norm dislikes a batch of one).

    Example:
        >>> data = TensorData(torch.zeros(5, 1, 4, 4, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))
        >>> [x.shape[0] for x, _ in batches(data, 2)]
        [2, 2, 1]
    """
    if batch_size < 1:
        raise CnnvizError(f"the batch size must be at least 1, got {batch_size}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(data.images.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        images = data.images[index].float().div_(255.0)
        yield augment_batch(images, augment, generator), data.labels[index]
