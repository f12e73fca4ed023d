"""Training the shipped dense models (``fashion_seg``, ``fashion_det``) on Fashion-MNIST scenes, one recipe.

Training scenes are pasted from Fashion-MNIST's training split, validation scenes too (another seed),
held-out test scenes from its test split. The model is trained by :func:`zoo.train.loop.train` (AdamW,
one-cycle, checkpoints after every epoch), scored once on the held-out scenes, and written by the runner
(:mod:`zoo.train.runner`) to ``OUT/NAME.pt`` with ``OUT/NAME-log.json``, the one log format (recipe,
normalization, history, held-out score, machine). What differs between the models (the network, how scenes
become labels, the loss, the score) comes in as a :class:`SceneTask`.

Example:
    >>> sorted(SCENE_TASKS), SCENE_TASKS["fashion_det"].defaults["epochs"]
    (['fashion_det', 'fashion_seg'], 10)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.data.datasets import NO_AUGMENT, Splits, TensorData, channel_stats
from cnnviz.zoo.data.scenes import Scenes, fashion_scenes
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.models.fashion_detector import DET_NAME, det_handle
from cnnviz.zoo.models.fashion_segmenter import CANVAS, SEG_NAME, seg_handle
from cnnviz.zoo.train.log import DatasetSizes, HeldOut, Normalization, TrainingLog
from cnnviz.zoo.train.loop import Objective, TrainConfig, train
from cnnviz.zoo.train.metrics import detection_accuracy, mean_iou
from cnnviz.zoo.train.objectives import DetectionObjective, box_labels
from cnnviz.zoo.train.runner import RunFiles, environment, finish, scene_command

SCENES_SOURCE = "fashion-scenes"


@dataclass(frozen=True)
class SceneTask:
    """What one shipped dense model brings to the recipe.

    Attributes:
        name: the zoo name, also the file prefix.
        canvas, items: scene side and item count range.
        classes: the model's class names, from the scenes.
        make_handle: ``(mean, std, classes) -> handle``, untrained.
        labels: scenes as the training loop's data (uint8 images and labels).
        score: ``(handle, held-out scenes) -> dict`` of the held-out scores; ``headline`` names the one the
            log's held-out accuracy holds.
        objective: makes the loss (None: cross-entropy per pixel or per image).
        defaults: the shipped recipe: ``train_scenes``, ``val_scenes``, ``test_scenes``, ``epochs``.
    """

    name: str
    canvas: int
    items: tuple[int, int]
    classes: Callable[[Scenes], tuple[str, ...]]
    make_handle: Callable[[tuple[float, ...], tuple[float, ...], tuple[str, ...]], ModelHandle]
    labels: Callable[[Scenes], TensorData]
    score: Callable[[ModelHandle, Scenes], dict[str, Any]]
    headline: str
    objective: Callable[[], Objective] | None
    defaults: dict[str, int]


def _uint8(scenes: Scenes) -> torch.Tensor:
    return (scenes.images * 255).round().to(torch.uint8)


def mask_data(scenes: Scenes) -> TensorData:
    """Scenes as a segmenter's training data: uint8 images, per-pixel labels."""
    return TensorData(_uint8(scenes), scenes.masks)


def box_data(scenes: Scenes) -> TensorData:
    """Scenes as a detector's training data: uint8 images, :func:`~zoo.train.objectives.box_labels`."""
    return TensorData(_uint8(scenes), box_labels(scenes))


SEG_TASK = SceneTask(SEG_NAME, CANVAS, (1, 2), classes=lambda scenes: scenes.mask_classes, make_handle=seg_handle,
                     labels=mask_data, score=mean_iou, headline="miou", objective=None,
                     defaults={"train_scenes": 1200, "val_scenes": 100, "test_scenes": 200, "epochs": 4})
DET_TASK = SceneTask(DET_NAME, CANVAS, (1, 3), classes=lambda scenes: scenes.classes, make_handle=det_handle,
                     labels=box_data, score=detection_accuracy, headline="map50", objective=DetectionObjective,
                     defaults={"train_scenes": 4000, "val_scenes": 200, "test_scenes": 500, "epochs": 10})
SCENE_TASKS = {task.name: task for task in (SEG_TASK, DET_TASK)}


def train_scene_model(task: SceneTask, out: str | Path, *, train_scenes: int | None = None,
                      val_scenes: int | None = None, test_scenes: int | None = None, epochs: int | None = None,
                      seed: int = 0, device: str | torch.device = "cpu", resume: bool = False,
                      keep_checkpoint: bool = False, progress: bool = False) -> TrainingLog:
    """Train ``task``'s model by the shipped recipe (counts and epochs overridable) and write its weights
    and log into ``out`` (an existing folder); returns the log.

    The state is checkpointed to ``OUT/NAME-checkpoint.pt`` after every epoch; ``resume`` continues from
    it (the same settings), and it is removed after a finished run unless ``keep_checkpoint``.
    """
    started = time.perf_counter()
    given = {"train_scenes": train_scenes, "val_scenes": val_scenes, "test_scenes": test_scenes, "epochs": epochs}
    counts = {**task.defaults, **{k: v for k, v in given.items() if v is not None}}
    for key, value in counts.items():
        if value < 1:
            raise CnnvizError(f"{key.replace('_', ' ')} must be at least 1, got {value}")
    files = RunFiles(Path(out), task.name)
    files.check_fresh(resume, other="--out")
    scenes = {split: fashion_scenes(counts[f"{split}_scenes"], split="test" if split == "test" else "train",
                                    canvas=task.canvas, items=task.items, seed=seed + offset)
              for offset, split in enumerate(("train", "val", "test"))}
    data = task.labels(scenes["train"])
    mean, std = channel_stats(data.images)
    classes = task.classes(scenes["train"])
    splits = Splits(SCENES_SOURCE, data, task.labels(scenes["val"]), task.labels(scenes["test"]), list(classes),
                    mean, std, NO_AUGMENT)  # no augmentation: a shift would move images and labels apart
    torch.manual_seed(seed)
    handle = task.make_handle(mean, std, classes).to(device)
    config = TrainConfig(epochs=counts["epochs"], batch_size=32, optimizer="adamw", lr=3e-3, schedule="onecycle",
                         augment=False, seed=seed)
    result = train(handle, splits, config, checkpoint=files.checkpoint, resume=resume, progress=progress,
                   objective=task.objective() if task.objective is not None else None)
    scores = task.score(handle.eval(), scenes["test"])
    log = TrainingLog(
        name=task.name, command=scene_command(task.name, epochs=counts["epochs"], scenes=counts["train_scenes"],
                                              seed=seed),
        spec=None, config=config.as_dict(),
        data={"source": SCENES_SOURCE, **{k: counts[k] for k in ("train_scenes", "val_scenes", "test_scenes")},
              "canvas": task.canvas, "items": list(task.items), "seed": seed},
        dataset=DatasetSizes(SCENES_SOURCE, counts["train_scenes"], counts["val_scenes"], counts["test_scenes"]),
        normalization=Normalization(list(mean), list(std)), classes=list(classes),
        parameters=sum(p.numel() for p in handle.model.parameters()),
        test=HeldOut(f"held out: {counts['test_scenes']} pasted from Fashion-MNIST's test split (seed {seed + 2})",
                     scores[task.headline], None, counts["test_scenes"], scores),
        best_epoch=result.best_epoch, stopped_early=result.stopped_early, restored_best=result.restored_best,
        train_seconds=round(sum(h["seconds"] for h in result.history), 1), history=result.history,
        environment=environment(handle))
    return finish(files, handle, log, started=started, keep_checkpoint=keep_checkpoint)
