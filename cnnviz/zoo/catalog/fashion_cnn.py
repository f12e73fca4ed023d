"""Zoo entries for the trainable CNNs: the shipped ``fashion_cnn`` and the untrained architectures.

``fashion_cnn`` is a tutorial CNN trained on Fashion-MNIST by ``cnnviz train``
(the exact command is in ``zoo/weights/fashion_cnn-log.json``). The log, not
this file, says how to rebuild it: architecture, activation and the
normalization statistics of its training split, so retraining with another
recipe needs no code change.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> handle.classes[0], handle.input_size, handle.in_channels
    ('T-shirt/top', 28, 1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.zoo.cnns import ARCHITECTURES, CnnSpec, cnn_handle
from cnnviz.zoo.datasets import FASHION_MNIST_CLASSES
from cnnviz.zoo.errors import CnnvizError
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.weights import load_weights
from cnnviz.zoo.registry import register
from cnnviz.zoo.training_log import TrainingLog

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FASHION_NAME = "fashion_cnn"
# Fashion-MNIST's training images, for the untrained entries (the shipped model reads its own from its log).
FASHION_MEAN, FASHION_STD = (0.286,), (0.353,)


def fashion_weights_path() -> Path:
    """The shipped state dict of ``fashion_cnn``."""
    return WEIGHTS_DIR / f"{FASHION_NAME}.pt"


def fashion_log_path() -> Path:
    """The training log shipped beside the weights."""
    return WEIGHTS_DIR / f"{FASHION_NAME}-log.json"


def read_training_log(path: str | Path) -> TrainingLog:
    """A ``NAME-log.json`` written by ``cnnviz train`` (see :class:`zoo.training_log.TrainingLog`).

    Example:
        >>> read_training_log(fashion_log_path()).test.accuracy >= 0.93
        True
    """
    return TrainingLog.read(path)


def handle_from_log(log: TrainingLog | dict[str, Any], weights: str | Path | None, name: str) -> ModelHandle:
    """The model a training log (or its JSON dict) describes, with ``weights`` loaded (None: random)."""
    log = log if isinstance(log, TrainingLog) else TrainingLog.from_dict(log)
    handle = cnn_handle(log.spec, mean=log.normalization.mean, std=log.normalization.std, classes=log.classes,
                        name=name)
    return _with_weights(handle, weights)


def _with_weights(handle: ModelHandle, weights: str | Path | None) -> ModelHandle:
    if weights is not None:
        load_weights(handle.model, weights, what=handle.name)
    return handle.eval()


@register(FASHION_NAME, "tutorial CNN trained on Fashion-MNIST by cnnviz train, 28px gray, 10 classes (ships here)",
          fashion_weights_path)
def build_fashion_cnn(weights: str | Path | None = "pretrained") -> ModelHandle:
    """The shipped Fashion-MNIST classifier (or its architecture with other or random weights)."""
    log = read_training_log(fashion_log_path())
    return handle_from_log(log, fashion_weights_path() if weights == "pretrained" else weights, FASHION_NAME)


def _register_untrained(arch: str, summary: str) -> None:
    def build(weights: str | Path | None = "pretrained") -> ModelHandle:
        if weights == "pretrained":
            raise CnnvizError(f"{arch} has no pretrained weights: load it with weights=None (random He "
                              f"initialization), train it with: cnnviz train --model {arch}, or use fashion_cnn")
        spec = CnnSpec(arch)  # Fashion-MNIST/MNIST shape: 1x28x28 in, 10 classes out
        return _with_weights(cnn_handle(spec, mean=FASHION_MEAN, std=FASHION_STD, classes=FASHION_MNIST_CLASSES,
                                        name=arch), weights)

    register(arch, f"{summary}; untrained (train: cnnviz train --model {arch})", lambda: None)(build)


for _arch, (_, _summary) in ARCHITECTURES.items():
    _register_untrained(_arch, _summary)
