"""The data an audit reads: images with their true classes, named the way ``audit.json`` names them.

A folder is read in the ImageFolder layout, ``DATA/CLASS/.../image.png``: the first sub-folder is the class, and an
item's id is its path relative to ``DATA`` (a ``str``). A named data set (``fashion-mnist``, ``mnist``, with
``:train`` or the default ``:test``) brings its labels; its items' ids are their indices (``int``). A tensor of
images with labels (``(images, labels)``, or :class:`zoo.data.TensorImages` with labels) is read like a named data
set. Class names are matched to the model's: exactly, in any case, or as :func:`zoo.safe_name` writes them (a folder
cannot be called ``T-shirt/top``; ``T-shirt_top`` names it).

Example:
    >>> import torch
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> data = audit_data(handle, (torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 1, 9])))
    >>> data.ids, data.labels.tolist(), data.kind
    ([0, 1, 2, 3], [0, 1, 1, 9], 'dataset')
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnviz.interpret.core import data_identity
from cnnviz.interpret.inside.atlas.feed import Preparer
from cnnviz.zoo import safe_name
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.data import DATASETS, ImageFiles, TensorImages, open_dataset
from cnnviz.zoo.handle import ModelHandle

ItemId = str | int
SHOWN = 6  # names listed in an error


@dataclass
class AuditData:
    """Labelled images for an audit.

    Attributes:
        dataset: the images, each a float ``(C, H, W)`` in [0, 1] (:func:`zoo.data.open_dataset`).
        ids: each item's id (a path relative to the folder, or an index).
        labels: ``(N,)`` int64, each item's true class as an index of the model's classes.
        classes: the model's class names (``"0"``, ``"1"``, ... where it has none).
        source: what the data was given as (the folder or data set name, ``"tensor"``).
        kind: ``"folder"`` or ``"dataset"``.
        identity: a hash of the items (:func:`interpret.core.data_identity`), so a run folder is reused only for
            the same data.
    """

    dataset: Dataset
    ids: list[ItemId]
    labels: np.ndarray
    classes: list[str]
    source: str
    kind: str
    identity: str

    def __len__(self) -> int:
        return len(self.ids)

    def images(self, rows: list[int]) -> list[Any]:
        """The items at ``rows`` as the dataset gives them (a batch tensor where it slices in one go)."""
        many = getattr(self.dataset, "__getitems__", None)
        return many(rows) if many is not None else [self.dataset[r] for r in rows]

    def prepared(self, handle: ModelHandle, rows: list[int]) -> torch.Tensor:
        """The items at ``rows`` as the model takes them, ``(B, C, H, W)`` on its device (as
        ``handle.prepare`` resizes them)."""
        return Preparer(handle)(self.images(rows)).to(handle.device)

    def by_id(self, handle: ModelHandle, ids: Sequence[ItemId]) -> dict[ItemId, torch.Tensor]:
        """Item id -> its prepared ``(C, H, W)`` image on the CPU, for the ids of this data (others skipped)."""
        rows = self.rows
        wanted = [item for item in dict.fromkeys(ids) if item in rows]
        if not wanted:
            return {}
        return dict(zip(wanted, self.prepared(handle, [rows[item] for item in wanted]).cpu()))

    @cached_property
    def rows(self) -> dict[ItemId, int]:
        """Item id -> row."""
        return {item: r for r, item in enumerate(self.ids)}


def audit_data(handle: ModelHandle, data: Any) -> AuditData:
    """``data`` with its true classes matched to ``handle``'s, checked: one clear error for an empty data set, a
    folder of non-images or without class sub-folders, a single class, or classes the model does not have.

    Args:
        handle: the classifier audited.
        data: a folder of class sub-folders, a data set name, ``(images, labels)`` or a labelled
            :class:`zoo.data.TensorImages`.
    """
    classes = list(handle.classes) if handle.classes else [str(i) for i in range(_outputs(handle))]
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        data = TensorImages(data[0], torch.as_tensor(data[1]).long())
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        found = _folder(handle, Path(data), classes)
    elif isinstance(data, TensorImages) or (isinstance(data, (str, Path)) and _named(data)):
        found = _tensors(handle, data, classes)
    elif isinstance(data, (str, Path)):
        open_dataset(data)  # says what is wrong with the name or the path
        raise CnnvizError(f"{data} is no folder of class sub-folders and no data set name")
    else:
        raise CnnvizError(f"an audit reads labelled data: a folder of class sub-folders, {' or '.join(DATASETS)}, or "
                          f"(images, labels); got {type(data).__name__}")
    present = sorted(set(found.labels.tolist()))
    if len(present) < 2:
        only = classes[present[0]] if present else "none"
        raise CnnvizError(f"{found.source} holds one class only ({only}): an audit compares a model's classes, "
                          "give images of two or more")
    return found


def _outputs(handle: ModelHandle) -> int:
    with torch.no_grad():
        probe = torch.zeros(1, handle.in_channels, handle.input_size, handle.input_size, device=handle.device)
        return int(handle(probe).shape[-1])


def _named(data: str | Path) -> bool:
    return str(data).lower().partition(":")[0] in DATASETS


def class_matcher(classes: list[str]) -> dict[str, int]:
    """Each way a class may be spelled (its name in any case, its :func:`zoo.safe_name`) -> its index.

    Example:
        >>> class_matcher(["T-shirt/top", "Bag"])["t-shirt_top"]
        0
    """
    spelled: dict[str, int] = {}
    for index, name in enumerate(classes):
        for form in (name, safe_name(name)):
            spelled.setdefault(form.lower(), index)
    return spelled


def _unknown(names: list[str], classes: list[str], where: str) -> CnnvizError:
    shown = ", ".join(repr(n) for n in names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")
    known = ", ".join(classes[:SHOWN]) + (" ..." if len(classes) > SHOWN else "")
    return CnnvizError(f"{where} has classes the model does not know ({shown}); the model's classes are {known}: "
                       "name the class sub-folders after them, or audit a model trained on these classes")


def _folder(handle: ModelHandle, root: Path, classes: list[str]) -> AuditData:
    files = ImageFiles(root)  # refuses a folder without image files
    ids: list[ItemId] = [files.name(i) for i in range(len(files))]
    loose = [i for i in ids if "/" not in str(i)]
    if loose:
        raise CnnvizError(f"{root / str(loose[0])} is not in a class sub-folder: an audit reads {root}/CLASS/IMAGE "
                          "(one sub-folder per class, named after the model's classes)")
    spelled = class_matcher(classes)
    folders = [str(i).split("/", 1)[0] for i in ids]
    unknown = sorted({f for f in folders if f.lower() not in spelled})
    if unknown:
        raise _unknown(unknown, classes, str(root))
    labels = np.array([spelled[f.lower()] for f in folders], dtype=np.int64)
    return AuditData(files, ids, labels, classes, str(root), "folder", data_identity(root))


def _tensors(handle: ModelHandle, data: TensorImages | str | Path, classes: list[str]) -> AuditData:
    source = str(data) if isinstance(data, (str, Path)) else data.description
    dataset = open_dataset(data)
    if not isinstance(dataset, TensorImages) or dataset.labels is None:
        raise CnnvizError(f"{source} has no labels: an audit needs each image's true class")
    if len(dataset) == 0:
        raise CnnvizError(f"{source} is empty: give at least two classes of images")
    labels = dataset.labels.cpu().numpy().astype(np.int64)
    if dataset.classes is not None:  # the data set's own names, matched to the model's
        spelled = class_matcher(classes)
        own = list(dataset.classes)
        unknown = sorted({own[k] for k in set(labels.tolist()) if own[k].lower() not in spelled})
        if unknown:
            raise _unknown(unknown, classes, source)
        labels = np.array([spelled[own[k].lower()] for k in labels], dtype=np.int64)
    elif labels.min() < 0 or labels.max() >= len(classes):
        raise CnnvizError(f"{source} has labels from {labels.min()} to {labels.max()}, but the model has "
                          f"{len(classes)} classes (0 to {len(classes) - 1})")
    identity = data_identity(data) if isinstance(data, (str, Path)) else \
        hashlib.sha256((data_identity(dataset.images) + labels.tobytes().hex()).encode()).hexdigest()[:24]
    return AuditData(dataset, list(range(len(labels))), labels, classes, source, "dataset", identity)
