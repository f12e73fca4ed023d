"""A ``cnnviz train`` output folder as a model: its log gives the architecture, its ``NAME.pt`` the weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.sources.building import Weights
from cnnviz.zoo.train.log import handle_from_log, read_training_log


def build_run(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
               ) -> ModelHandle:
    folder = Path(source)
    logs = sorted(folder.glob("*-log.json"))
    if not logs:
        raise CnnvizError(f"{folder} is not a cnnviz train folder: it holds no NAME-log.json")
    if len(logs) > 1:
        raise CnnvizError(f"{folder} holds {len(logs)} training logs ({', '.join(p.name for p in logs)}): "
                          "name the folder of one run")
    log_path = logs[0]
    run_name = log_path.name[:-len("-log.json")]
    checkpoint = folder / f"{run_name}.pt"
    if weights == "pretrained":
        if not checkpoint.is_file():
            raise CnnvizError(f"{folder} has the log of {run_name} but no weights {checkpoint.name}: "
                              "did the training finish?")
        weights = checkpoint
    handle = handle_from_log(read_training_log(log_path), weights, run_name)
    handle.config = dataclasses.replace(handle.config, source=str(folder), training_log=str(log_path))
    return handle
