"""Zoo entries for the trainable CNNs without weights (``tutorial_cnn``, ``lenet5``, ``small_resnet``): the
Fashion-MNIST shape (1x28x28 in, 10 classes out), random He initialization or weights given.

Example:
    >>> from cnnviz import zoo
    >>> zoo.load("lenet5", weights=None, device="cpu").classes[9]
    'Ankle boot'
"""

from __future__ import annotations

from pathlib import Path

from cnnviz.zoo.catalog.registry import register
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.data.datasets import FASHION_MEAN, FASHION_MNIST_CLASSES, FASHION_STD
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import load_weights
from cnnviz.zoo.models.cnns import ARCHITECTURES, CnnSpec, cnn_handle


def _register_untrained(arch: str, summary: str) -> None:
    def build(weights: str | Path | None = "pretrained") -> ModelHandle:
        if weights == "pretrained":
            raise CnnvizError(f"{arch} has no pretrained weights: load it with weights=None (random He "
                              f"initialization), train it with: cnnviz train --model {arch}, or use fashion_cnn")
        handle = cnn_handle(CnnSpec(arch), mean=FASHION_MEAN, std=FASHION_STD, classes=FASHION_MNIST_CLASSES,
                            name=arch)
        if weights is not None:
            load_weights(handle.model, weights, what=arch)
        return handle.eval()

    register(arch, f"{summary}; untrained (train: cnnviz train --model {arch})", lambda: None)(build)


for _arch, (_, _summary) in ARCHITECTURES.items():
    _register_untrained(_arch, _summary)
