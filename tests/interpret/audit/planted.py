"""The planted-shortcut experiment, shared by its test and bench/audit_shortcut.py.

1. A Fashion-MNIST training folder (IDX files) where most images of one class carry a mark.
2. ``cnnviz train`` on it (tutorial_cnn, a few thousand images, two epochs).
3. The shortcut is real: the mark pasted on other classes moves their predictions to the class.
4. An audit set (the official test split) where half of the class's images carry the mark, written as a
   folder of PNGs and audited by ``interpret.audit``; purity and recall of the top flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnviz import interpret, zoo
from cnnviz.zoo.data import FASHION_MNIST_CLASSES, TensorData, read_idx_split, save_image
from cnnviz.zoo.data.datasets import write_idx
from cnnviz.zoo.data import Frame, Mark, plant, stamp

FASHION = "/usr/share/datasets/fashion-mnist"
TRAIN_IMAGES, EPOCHS, MAP_SIDE = 3000, 2, 14


@dataclass
class Outcome:
    """What one audit found: the ranked flags (under the threshold too) and the top flag's quality."""

    flags: list[dict]
    purity: float
    recall: float
    on_mark: bool

    @property
    def top_score(self) -> float:
        return float(self.flags[0]["score"]) if self.flags else 0.0


def write_training_folder(folder: Path, *, class_index: int, mark: Mark | Frame | None, fraction: float = 0.9,
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


def audit_set(class_index: int, mark: Mark | Frame | None, *, per_class: int = 100, fraction: float = 0.5,
              seed: int = 0) -> tuple[TensorData, np.ndarray]:
    """``per_class`` test images of each class (twice that of ``class_index``), the mark on ``fraction`` of that
    class (half by default)."""
    test = read_idx_split(FASHION, "t10k")
    index = torch.cat([torch.nonzero(test.labels == c).flatten()[:per_class * (2 if c == class_index else 1)]
                       for c in range(len(FASHION_MNIST_CLASSES))])
    data = test.subset(index)
    if mark is None:
        return data, np.zeros(len(data), dtype=bool)
    data, marked = plant(data, class_index=class_index, fraction=fraction, mark=mark, seed=seed + 1)
    return data, marked.numpy()


def shortcut_effect(handle: zoo.ModelHandle, data: TensorData, class_index: int,
                    mark: Mark | Frame) -> dict[str, float]:
    """How the mark pasted on the other classes' images moves their predictions toward ``class_index``."""
    others = data.images[data.labels != class_index].float() / 255
    with torch.no_grad():
        clean, marked = handle(others).softmax(1), handle(stamp(others, mark)).softmax(1)
    return {"p_clean": float(clean[:, class_index].mean()), "p_marked": float(marked[:, class_index].mean()),
            "predicted_clean": float((clean.argmax(1) == class_index).float().mean()),
            "predicted_marked": float((marked.argmax(1) == class_index).float().mean())}


def write_audit_folder(folder: Path, data: TensorData, marked: np.ndarray,
                       classes: Sequence[str] = FASHION_MNIST_CLASSES) -> set[str]:
    """The audit set as PNGs in ``folder/CLASS/NNNN.png`` (class names as ``zoo.safe_name`` writes them).

    Returns:
        The ids (paths relative to ``folder``) of the marked images.
    """
    ids = set()
    for i, (image, label) in enumerate(zip(data.images, data.labels.tolist())):
        item = f"{zoo.safe_name(classes[label])}/{i:05d}.png"
        save_image(folder / item, image[0].numpy())
        if marked[i]:
            ids.add(item)
    return ids


def holds_mark(box: Sequence[float], mark: Mark | Frame, size: int, side: int) -> bool:
    """Whether a relevance box (fractions; one map cell of slack) is on the mark: it holds a square mark's centre,
    or touches a frame."""
    cell = 1 / side
    x0, y0, x1, y1 = box[0] - cell, box[1] - cell, box[2] + cell, box[3] + cell
    if isinstance(mark, Mark):
        mx0, my0, mx1, my1 = mark.fraction_box(size, size)
        return x0 <= (mx0 + mx1) / 2 <= x1 and y0 <= (my0 + my1) / 2 <= y1
    ys, xs = np.nonzero(mark.mask(size, size).numpy())
    return bool(((x0 <= (xs + 0.5) / size) & ((xs + 0.5) / size <= x1) & (y0 <= (ys + 0.5) / size)
                 & ((ys + 0.5) / size <= y1)).any())


def run_audit(handle: zoo.ModelHandle, folder: Path, workdir: Path, method: str, marked: set[str],
              mark: Mark | Frame | None, side: int = MAP_SIDE, concepts: int = 0) -> Outcome:
    """``interpret.audit`` of ``folder`` by ``method`` (``NAME`` or ``NAME@LAYER``), with every candidate flag kept
    (threshold 0), and the top flag's quality:
    purity and recall of the marked ids, and whether its relevance box is on the mark (:func:`holds_mark`)."""
    method, _, layer = method.partition("@")  # "gradcam@features.block2.act": a method at a layer
    found = interpret.audit(handle, str(folder), workdir=workdir, method=method, layer=layer or None,
                            map_size=side, concepts=concepts, threshold=0.0)
    flags = found.flags
    if not flags or not marked:
        return Outcome(flags, 0.0, 0.0, False)
    members = set(flags[0]["members"])
    on_mark = mark is not None and holds_mark(flags[0]["evidence"]["relevance_box"], mark, handle.input_size, side)
    return Outcome(flags, len(members & marked) / len(members), len(members & marked) / len(marked), on_mark)
