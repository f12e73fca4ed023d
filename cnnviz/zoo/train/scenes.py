"""Training the shipped dense models (``fashion_seg``, ``fashion_det``) on Fashion-MNIST scenes, one recipe.

Training scenes are pasted from Fashion-MNIST's training split, validation scenes too (another seed),
held-out test scenes from its test split. The model is trained by :func:`zoo.training.train` (AdamW,
one-cycle, checkpoints after every epoch), scored once on the held-out scenes, and written to
``OUT/NAME.pt`` with ``OUT/NAME-log.json`` (recipe, normalization, history, held-out score, machine).
What differs between the models (the network, how scenes become labels, the loss, the score) comes in
as a :class:`SceneTask`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cnnviz.zoo.datasets import NO_AUGMENT, Splits, TensorData, channel_stats
from cnnviz.zoo.errors import CnnvizError
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.jsonfile import write_json
from cnnviz.zoo.scenes import Scenes, fashion_scenes
from cnnviz.zoo.weights import load_weights

if TYPE_CHECKING:
    from cnnviz.zoo.training import Objective


@dataclass(frozen=True)
class SceneTask:
    """What one shipped dense model brings to the recipe.

    Attributes:
        name: the zoo name, also the file prefix.
        canvas, items: scene side and item count range.
        classes: the model's class names, from the scenes.
        make_handle: ``(mean, std, classes) -> handle``, untrained.
        labels: scenes as the training loop's data (uint8 images and labels).
        score: ``(handle, held-out scenes) -> dict`` of the held-out accuracy.
        objective: makes the loss (None: cross-entropy per pixel or per image); a factory, so that ``import zoo``
            does not load the training loop.
        defaults: the shipped recipe: ``train_scenes``, ``val_scenes``, ``test_scenes``, ``epochs``.
    """

    name: str
    canvas: int
    items: tuple[int, int]
    classes: Callable[[Scenes], tuple[str, ...]]
    make_handle: Callable[[tuple[float, ...], tuple[float, ...], tuple[str, ...]], ModelHandle]
    labels: Callable[[Scenes], TensorData]
    score: Callable[[ModelHandle, Scenes], dict[str, Any]]
    objective: Callable[[], Objective] | None
    defaults: dict[str, int]


def train_scene_model(task: SceneTask, out: str | Path, *, train_scenes: int | None = None,
                      val_scenes: int | None = None, test_scenes: int | None = None, epochs: int | None = None,
                      seed: int = 0, device: str | torch.device = "cpu", resume: bool = False,
                      keep_checkpoint: bool = False, progress: bool = False) -> dict[str, Any]:
    """Train ``task``'s model by the shipped recipe (counts and epochs overridable) and write its weights
    and log into ``out`` (an existing folder); returns the log.

    The state is checkpointed to ``OUT/NAME-checkpoint.pt`` after every epoch; ``resume`` continues from
    it (the same settings), and it is removed after a finished run unless ``keep_checkpoint``.
    """
    counts = {**task.defaults, **{k: v for k, v in (("train_scenes", train_scenes), ("val_scenes", val_scenes),
                                                     ("test_scenes", test_scenes), ("epochs", epochs)) if v is not None}}
    for key, value in counts.items():
        if value < 1:
            raise CnnvizError(f"{key.replace('_', ' ')} must be at least 1, got {value}")
    out = Path(out)
    checkpoint = out / f"{task.name}-checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise CnnvizError(f"{checkpoint} holds an unfinished run: add --resume to continue it, or pick another --out")
    scenes = {split: fashion_scenes(counts[f"{split}_scenes"], split="test" if split == "test" else "train",
                                    canvas=task.canvas, items=task.items, seed=seed + offset)
              for offset, split in enumerate(("train", "val", "test"))}
    data = task.labels(scenes["train"])
    mean, std = channel_stats(data.images)
    classes = task.classes(scenes["train"])
    splits = Splits("fashion-scenes", data, task.labels(scenes["val"]), task.labels(scenes["test"]), list(classes),
                    mean, std, NO_AUGMENT)  # no augmentation: a shift would move images and labels apart
    from cnnviz.zoo.training import TrainConfig, save_atomic, train  # the loop loads only when a model trains

    torch.manual_seed(seed)
    handle = task.make_handle(mean, std, classes).to(device)
    config = TrainConfig(epochs=counts["epochs"], batch_size=32, optimizer="adamw", lr=3e-3, schedule="onecycle",
                         augment=False, seed=seed)
    started = time.perf_counter()
    result = train(handle, splits, config, checkpoint=checkpoint, resume=resume, progress=progress,
                   objective=task.objective() if task.objective is not None else None)
    scores = task.score(handle.eval(), scenes["test"])
    save_atomic({k: v.detach().contiguous().cpu() for k, v in handle.model.state_dict().items()},
                out / f"{task.name}.pt")
    log = {"model": task.name,
           "recipe": {"train_scenes": counts["train_scenes"], "val_scenes": counts["val_scenes"],
                      "test_scenes": counts["test_scenes"], "canvas": task.canvas, "items": list(task.items),
                      "seed": seed, "train": config.as_dict()},
           "command": f"cnnviz train --model {task.name} --epochs {counts['epochs']} --scenes "
                      f"{counts['train_scenes']} --seed {seed}",
           "normalization": {"mean": list(mean), "std": list(std)}, "classes": list(classes),
           "history": result.history, "seconds": round(time.perf_counter() - started, 1),
           "environment": {"device": str(handle.device), "threads": torch.get_num_threads(),
                           "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                           "date": time.strftime("%Y-%m-%d", time.gmtime())},
           "test": {"scenes": f"held out: {counts['test_scenes']} pasted from Fashion-MNIST's test split "
                              f"(seed {seed + 2})", **scores}}
    write_json(out / f"{task.name}-log.json", log)
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    return log


def shipped_scene_model(task: SceneTask, weights_dir: Path, weights: str | Path | None = "pretrained") -> ModelHandle:
    """``task``'s model as shipped: normalization and classes from its log in ``weights_dir``, and its weights
    (``"pretrained"``: the shipped file; a path: other weights; None: random)."""
    path = weights_dir / f"{task.name}-log.json"
    if not path.is_file():
        raise CnnvizError(f"the {task.name} log is missing ({path}): retrain it with cnnviz train --model {task.name}")
    log = json.loads(path.read_text())
    handle = task.make_handle(tuple(log["normalization"]["mean"]), tuple(log["normalization"]["std"]),
                              tuple(log["classes"]))
    if weights is not None:
        load_weights(handle.model, weights_dir / f"{task.name}.pt" if weights == "pretrained" else weights,
                     what=task.name)
    return handle.eval()
