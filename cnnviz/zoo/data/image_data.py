"""Image collections to look at (not to train on): a folder of files, a tensor batch, a named dataset's
split, or a user's torch Dataset, each item a float ``(C, H, W)`` image in [0, 1].

:func:`open_dataset` turns any of these into a map-style Dataset whose items
have names; the neuron atlas and the gallery scan them. The training data
(``TensorData``, ``Splits``) is in :mod:`zoo.data.datasets`, which this reads the
named datasets from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cnnviz.zoo.data.datasets import DATASETS, has_idx_files, read_idx_split
from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.data.images import IMAGE_SUFFIXES, load_image

DataSource = str | Path | Dataset | torch.Tensor


class TensorImages(Dataset):
    """Images held in memory, ``(N, C, H, W)`` uint8 or float in [0, 1].

    Batches are sliced in one indexing operation (``__getitems__``), not
    image by image.

    Example:
        >>> data = TensorImages(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
        >>> len(data), data[0].dtype
        (3, torch.float32)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                 classes: Sequence[str] | None = None, description: str = "tensor") -> None:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise CnnvizError(f"images must be (N, 1|3, H, W), got {tuple(images.shape)}")
        self.images, self.labels, self.classes, self.description = images, labels, classes, description

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _float(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._float(self.images[index])

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self._float(self.images[torch.as_tensor(indices)])

    def name(self, index: int) -> str:
        """A short label for image ``index`` (with its class when known)."""
        if self.labels is None:
            return f"#{index}"
        label = int(self.labels[index])
        return f"#{index} {self.classes[label] if self.classes and label < len(self.classes) else label}"


class ImageFiles(Dataset):
    """Every image file under a folder (sub-folders included), in sorted order.

    Example:
        >>> ImageFiles("photos/").name(0)  # doctest: +SKIP
        'cats/chelsea.png'
    """

    def __init__(self, folder: str | Path) -> None:
        self.root = Path(folder)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise CnnvizError(f"the folder {self.root} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.description = str(self.root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_image(self.paths[index])

    def name(self, index: int) -> str:
        """The file's path relative to the folder."""
        return self.paths[index].relative_to(self.root).as_posix()


class ItemImages(Dataset):
    """A user's dataset whose items are images or tuples starting with one (``(image, label)``).

    An image is a ``(C, H, W)`` tensor (float in [0, 1] or uint8), a PIL
    image or an array.
    """

    def __init__(self, dataset: Dataset) -> None:
        if not hasattr(dataset, "__len__"):
            raise CnnvizError("the dataset has no length: the atlas needs a map-style torch Dataset")
        self.dataset = dataset
        self.description = type(dataset).__name__

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> torch.Tensor:
        return as_image(self.dataset[index])

    def name(self, index: int) -> str:
        """``#index``."""
        return f"#{index}"


def as_image(item: Any) -> torch.Tensor:
    """A dataset item as a float ``(C, H, W)`` image in [0, 1] (first element of a tuple)."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise CnnvizError("a dataset item is an empty tuple: expected (image, ...)")
        item = item[0]
    if isinstance(item, torch.Tensor) and item.dtype == torch.uint8:
        item = item.float() / 255.0
    if not isinstance(item, (torch.Tensor, np.ndarray, Image.Image)):
        raise CnnvizError(f"a dataset item is a {type(item).__name__}: expected an image tensor, array or PIL image")
    return load_image(item)


def open_dataset(data: DataSource) -> Dataset:
    """The images of ``data``: a folder, ``"fashion-mnist"`` / ``"mnist"`` (``:train`` or the
    default ``:test`` split), a tensor batch, or a torch Dataset.

    Example:
        >>> len(open_dataset("fashion-mnist"))  # doctest: +NEEDS_FASHION_MNIST
        10000
    """
    if isinstance(data, (TensorImages, ImageFiles, ItemImages)):
        return data
    if isinstance(data, torch.Tensor):
        return TensorImages(data)
    if isinstance(data, Dataset):
        return ItemImages(data)
    if not isinstance(data, (str, Path)):
        raise CnnvizError(f"data must be a folder, a dataset name, a tensor or a torch Dataset, "
                          f"got {type(data).__name__}")
    key, _, split = str(data).lower().partition(":")
    if key in DATASETS:
        spec = DATASETS[key]
        if split not in ("", "test", "train"):
            raise CnnvizError(f"unknown split {split!r} of {key}: use {key}:train or {key}:test")
        if not has_idx_files(spec.default_dir):
            raise CnnvizError(f"{spec.name} is not in {spec.default_dir}: {spec.install_hint}")
        split = split or "test"
        tensors = read_idx_split(spec.default_dir, "train" if split == "train" else "t10k")
        return TensorImages(tensors.images, tensors.labels, spec.classes, f"{spec.name}:{split}")
    path = Path(data)
    if path.is_dir():
        return ImageFiles(path)
    if path.exists():
        raise CnnvizError(f"{path} is a file: give a folder of images or a dataset name ({', '.join(DATASETS)})")
    raise CnnvizError(f"no folder or dataset {str(data)!r}: give a folder of images or one of "
                      f"{', '.join(DATASETS)}{closest(key, DATASETS)}")


def image_name(dataset: Dataset, index: int) -> str:
    """A label for item ``index``: its file name, class, or ``#index``."""
    name = getattr(dataset, "name", None)
    return name(index) if callable(name) else f"#{index}"
