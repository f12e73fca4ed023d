"""The planted-shortcut experiment, shared by its test and bench/audit_shortcut.py.

1. A Fashion-MNIST training folder (IDX files) where most images of one class carry a mark.
2. ``cnnviz train`` on it (tutorial_cnn, a few thousand images, two epochs).
3. The shortcut is real: the mark pasted on other classes moves their predictions to the class.
4. An audit set (the official test split) where half of the class's images carry the mark; its maps,
   SpRAy strategies per class and flags; purity and recall of the top flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz import interpret, zoo
from cnnviz.interpret.audit.flags import Flag, shortcut_flags
from cnnviz.interpret.audit.strategies import class_strategies
from cnnviz.zoo.data import FASHION_MNIST_CLASSES, TensorData, read_idx_split
from cnnviz.zoo.data.datasets import write_idx
from cnnviz.zoo.data.shortcuts import Mark, plant, stamp

FASHION = "/usr/share/datasets/fashion-mnist"
TRAIN_IMAGES, EPOCHS, MAP_SIDE = 3000, 2, 14


@dataclass
class Outcome:
    """What one audit found: the ranked flags (under the threshold too) and the top flag's quality."""

    flags: list[Flag]
    purity: float
    recall: float
    on_mark: bool

    @property
    def top_score(self) -> float:
        return self.flags[0].score if self.flags else 0.0


def write_training_folder(folder: Path, *, class_index: int, mark: Mark | None, fraction: float = 0.9,
                          images: int = TRAIN_IMAGES, seed: int = 0) -> Path:
    """A seeded subset of Fashion-MNIST's training split as IDX files, the mark on ``fraction`` of one class.

    The folder's name holds "fashion", so ``cnnviz train`` names the classes as Fashion-MNIST's.
    """
    full = read_idx_split(FASHION, "train")
    data = full.subset(torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))[:images])
    if mark is not None:
        data, _ = plant(data, class_index=class_index, fraction=fraction, mark=mark, seed=seed)
    write_idx(folder / "train-images-idx3-ubyte.gz", data.images[:, 0].numpy())
    write_idx(folder / "train-labels-idx1-ubyte.gz", data.labels.numpy().astype(np.uint8))
    return folder


def train(run: Callable[..., object], data: Path, out: Path, seed: int = 0) -> zoo.ModelHandle:
    """``cnnviz train`` through ``run`` (the tests' ``cli`` fixture, or ``cnnviz.cli.main.main`` on a list)."""
    args = ["train", "--data", data, "--epochs", EPOCHS, "--no-augment", "--seed", seed, "--out", out,
            "--name", "planted", "--quiet", "--threads", torch.get_num_threads()]
    run(*args)
    return zoo.load(str(out), device="cpu")


def audit_set(class_index: int, mark: Mark | None, *, per_class: int = 100, seed: int = 0) -> tuple[TensorData, np.ndarray]:
    """``per_class`` test images of each class (twice that of ``class_index``), the mark on half of that class."""
    test = read_idx_split(FASHION, "t10k")
    index = torch.cat([torch.nonzero(test.labels == c).flatten()[:per_class * (2 if c == class_index else 1)]
                       for c in range(len(FASHION_MNIST_CLASSES))])
    data = test.subset(index)
    if mark is None:
        return data, np.zeros(len(data), dtype=bool)
    data, marked = plant(data, class_index=class_index, fraction=0.5, mark=mark, seed=seed + 1)
    return data, marked.numpy()


def shortcut_effect(handle: zoo.ModelHandle, data: TensorData, class_index: int, mark: Mark) -> dict[str, float]:
    """How the mark pasted on the other classes' images moves their predictions toward ``class_index``."""
    others = data.images[data.labels != class_index].float() / 255
    with torch.no_grad():
        clean, marked = handle(others).softmax(1), handle(stamp(others, mark)).softmax(1)
    return {"p_clean": float(clean[:, class_index].mean()), "p_marked": float(marked[:, class_index].mean()),
            "predicted_clean": float((clean.argmax(1) == class_index).float().mean()),
            "predicted_marked": float((marked.argmax(1) == class_index).float().mean())}


def explanation_maps(handle: zoo.ModelHandle, data: TensorData, method: str, side: int = MAP_SIDE) -> np.ndarray:
    """Each image's map for its own label, by a registered method, average-pooled to ``side`` x ``side``."""
    images = data.images.float() / 255
    maps = interpret.get_method(method).fn(handle, images, data.labels).detach()
    return F.adaptive_avg_pool2d(maps.sum(1, keepdim=True), side)[:, 0].numpy()


def audit(maps: np.ndarray, labels: np.ndarray, marked: np.ndarray, mark: Mark | None,
          classes: Sequence[str] = FASHION_MNIST_CLASSES) -> Outcome:
    """Strategies per class, flags (all candidates, ranked) and the top flag's purity, recall and place."""
    strategies = {}
    for c, name in enumerate(classes):
        members = np.flatnonzero(labels == c)
        strategies[name] = class_strategies(maps[members], members.tolist(), embed=0)
    flags = shortcut_flags(strategies, keep_below=True)
    if not flags or not marked.any():
        return Outcome(flags, 0.0, 0.0, False)
    items = np.asarray(flags[0].members)
    on_mark = False
    if mark is not None:
        side = maps.shape[-1]
        x0, y0, x1, y1 = flags[0].evidence["relevance_box"]
        mx0, my0, mx1, my1 = mark.fraction_box(28, 28)
        cell = 1 / side  # the box is on the map's grid: allow one cell
        on_mark = x0 - cell <= (mx0 + mx1) / 2 <= x1 + cell and y0 - cell <= (my0 + my1) / 2 <= y1 + cell
    return Outcome(flags, float(marked[items].mean()), float(marked[items].sum() / marked.sum()), on_mark)
