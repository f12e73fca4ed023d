"""Training: the loop, checkpoints, the LR range test, the one log format, diagnostics, metrics (mAP, mean
IoU), objectives (detection), the scene recipes and the one runner every training command goes through.

The log, the diagnostics, the metrics and the checkpoints load with this face; the loop and what needs it
(the runner, the LR range test, the objectives, the scene recipes) load on first use, so that ``import
cnnviz.zoo``, which reads the shipped logs, does not load the training loop.

Example:
    >>> from cnnviz.zoo import train
    >>> train.TrainConfig(epochs=2).epochs
    2
"""

import importlib
from typing import Any

from cnnviz.zoo.train.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_atomic
from cnnviz.zoo.train.diagnostics import (ActivationStats, Overfitting, activation_stats, confusion_matrix,
                                          find_overfitting, gradient_norms)
from cnnviz.zoo.train.log import (DatasetSizes, HeldOut, Normalization, TrainingLog, handle_from_log,
                                  read_training_log)
from cnnviz.zoo.train.metrics import average_precision, detection_accuracy, mean_average_precision, mean_iou

_LATER = {  # name -> the module that has it, loaded on first use
    **dict.fromkeys(("DEFAULT_LR", "OPTIMIZERS", "SCHEDULES", "Objective", "TrainConfig", "TrainResult", "evaluate",
                     "make_optimizer", "make_scheduler", "train"), "loop"),
    **dict.fromkeys(("LRRange", "lr_range_test"), "lr_range"),
    **dict.fromkeys(("DetectionObjective", "box_labels", "detector_targets"), "objectives"),
    **dict.fromkeys(("ClassifierPlan", "ClassifierRequest", "RunFiles", "TUTORIAL_OPTIONS", "classifier_spec",
                     "data_settings", "load_splits", "plan_classifier", "train_classifier"), "runner"),
    **dict.fromkeys(("DET_TASK", "SCENE_TASKS", "SEG_TASK", "SceneTask", "train_scene_model"), "scenes"),
}


def __getattr__(name: str) -> Any:
    if name in _LATER:
        return getattr(importlib.import_module(f"cnnviz.zoo.train.{_LATER[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActivationStats", "CHECKPOINT_FORMAT", "DatasetSizes", "HeldOut", "Normalization", "Overfitting", "TrainingLog",
    "activation_stats", "average_precision", "confusion_matrix", "detection_accuracy", "find_overfitting",
    "gradient_norms", "handle_from_log", "load_checkpoint", "mean_average_precision", "mean_iou",
    "read_training_log", "save_atomic", *_LATER,
]
