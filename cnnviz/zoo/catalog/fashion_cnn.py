"""Zoo entry ``fashion_cnn``: the tutorial CNN trained on Fashion-MNIST by ``cnnviz train``, shipped.

The exact command is in ``zoo/weights/fashion_cnn-log.json``. The log, not this file, says how to
rebuild it: architecture, activation and the normalization statistics of its training split, so
retraining with another recipe needs no code change.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> handle.classes[0], handle.input_size, handle.in_channels
    ('T-shirt/top', 28, 1)
"""

from __future__ import annotations

from pathlib import Path

from cnnviz.zoo.catalog.registry import register
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import WEIGHTS_DIR
from cnnviz.zoo.train.log import handle_from_log, read_training_log

FASHION_NAME = "fashion_cnn"


def fashion_weights_path() -> Path:
    """The shipped state dict of ``fashion_cnn``."""
    return WEIGHTS_DIR / f"{FASHION_NAME}.pt"


def fashion_log_path() -> Path:
    """The training log shipped beside the weights."""
    return WEIGHTS_DIR / f"{FASHION_NAME}-log.json"


@register(FASHION_NAME, "tutorial CNN trained on Fashion-MNIST by cnnviz train, 28px gray, 10 classes (ships here)",
          fashion_weights_path)
def build_fashion_cnn(weights: str | Path | None = "pretrained") -> ModelHandle:
    """The shipped Fashion-MNIST classifier (or its architecture with other or random weights)."""
    log = read_training_log(fashion_log_path())
    return handle_from_log(log, fashion_weights_path() if weights == "pretrained" else weights, FASHION_NAME)
