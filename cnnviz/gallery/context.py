"""The shared state of a build: models, their images and predictions, each loaded once and only when a card
needs it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.gallery.settings import PHOTOS, Settings
from cnnviz.interpret.views import photo
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

RANDOM_DRAWS = 8  # random maps per image behind the band a method must leave


@dataclass
class Subject:
    """One image as a model sees it."""

    name: str
    image: torch.Tensor  # (C, S, S) on the CPU, prepared for the model


class Context:
    """Models, images and predictions, each loaded once and only when a card needs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sizes = settings.sizes

    @functools.cache
    def handle(self, model: str) -> ModelHandle:
        """The zoo model ``model`` on the chosen device."""
        return zoo.load(model, device=self.settings.device)

    @functools.cache
    def subjects(self, model: str) -> tuple[Subject, ...]:
        """The images shown for ``model``, prepared at its input size."""
        handle = self.handle(model)
        if self.settings.images is not None:
            named = zoo.load_images(list(self.settings.images))
            return tuple(Subject(n, handle.prepare([im])[0].cpu()) for n, im in named[: max(1, len(named))])
        if self.dataset(model) is not None:
            data = self.dataset(model)
            picks, seen = [], set()
            for i in range(len(data)):  # one image per class, in test-set order
                label = int(data.labels[i]) if data.labels is not None else i
                if label not in seen:
                    seen.add(label)
                    picks.append(i)
                if len(picks) == self.sizes.images:
                    break
            return tuple(Subject(f"fashion-mnist test #{i} ({data.name(i).split(' ', 1)[-1]})",
                                 data[i].clone()) for i in picks)
        names = PHOTOS[: self.sizes.images]
        return tuple(Subject(n, handle.prepare([zoo.load_image(n)])[0].cpu()) for n in names)

    def batch(self, model: str) -> torch.Tensor:
        """The subjects as one batch on the model's device."""
        return torch.stack([s.image for s in self.subjects(model)]).to(self.handle(model).device)

    @functools.cache
    def probabilities(self, model: str) -> torch.Tensor:
        """Softmax of the model on its subjects ``(B, classes)``, on the CPU."""
        with torch.no_grad():
            return self.handle(model)(self.batch(model)).softmax(-1).cpu()

    @functools.cache
    def random_band(self, model: str, index: int) -> Any:
        """The random maps' deletion (onto a blurred copy) and insertion AUCs on subject ``index``: the band
        each method's scores are read against (:func:`interpret.evaluate.random_band`)."""
        from cnnviz.interpret.evaluate import random_band

        image = self.batch(model)[index:index + 1]
        return random_band(self.handle(model), image, draws=RANDOM_DRAWS, steps=self.sizes.curve_steps,
                           deletion_to="blur")

    @functools.cache
    def concepts(self, model: str, index: int) -> Any:
        """The ``sizes.concepts`` most relevant channels of the model's default layer for subject ``index``, with
        their shares and maps (:func:`interpret.concept_relevance`, CRP)."""
        image = self.batch(model)[index:index + 1]
        return interpret.concept_relevance(self.handle(model), image, None, layer=self.handle(model).default_layer,
                                           channels=self.sizes.concepts)

    @functools.cache
    def concept_pictures(self, model: str) -> Any:
        """What each channel the concept panels of ``model`` name looks for: one optimization for the channels of
        every subject's panel (``sizes.concept_steps`` steps; :func:`interpret.layer_sheet` with ``channels``)."""
        found = [self.concepts(model, b) for b in range(len(self.subjects(model)))]
        channels = {int(c) for f in found for c in f.channels.flatten()}
        return interpret.layer_sheet(self.handle(model), found[0].layer, channels=channels,
                                     steps=self.sizes.concept_steps, progress=self.settings.progress)

    @functools.cache
    def dataset(self, model: str) -> Any:
        """Fashion-MNIST test images for a 28 px gray model when installed, else None."""
        handle = self.handle(model)
        if self.settings.images is not None or handle.in_channels != 1 or handle.input_size != 28:
            return None
        try:
            data = interpret.open_dataset("fashion-mnist")
        except CnnvizError:
            return None
        return data

    @functools.cache
    def atlas_data(self, model: str) -> Any:
        """What the neuron atlas scans: part of the dataset, or every scikit-image photo."""
        from cnnviz.zoo.data import TensorImages

        data = self.dataset(model)
        if data is not None:
            n = min(len(data), self.sizes.atlas_images)
            labels = data.labels[:n] if data.labels is not None else None
            return TensorImages(data.images[:n], labels, data.classes, f"{data.description} (first {n})")
        handle = self.handle(model)
        photos = [zoo.load_image(name) for name in zoo.sample_names()]
        return TensorImages(handle.prepare(photos).cpu(), description="scikit-image photos")

    @functools.cache
    def layers(self, model: str) -> tuple[str, ...]:
        """A few layers spread from input to output: the network's stages (blocks), else its conv layers."""
        handle = self.handle(model)
        rows = interpret.layer_table(handle)
        containers = {r.name for r in rows if r.type in ("Sequential", "ModuleList")}
        stages = [r.name for r in rows if "." in r.name and r.name.rsplit(".", 1)[0] in containers
                  and r.calls == 1 and r.output_shape is not None and len(r.output_shape) == 4
                  and r.type not in ("Sequential", "ModuleList", "Identity")]
        if len(stages) < 2:
            stages = [name for name, _ in interpret.conv_layers(handle)]
        if not stages:
            raise CnnvizError(f"{handle.name} has no conv layers to show")
        n = min(self.sizes.layers, len(stages))
        picks = np.unique(np.round(np.linspace(0, len(stages) - 1, n)).astype(int)) if n > 1 else [len(stages) - 1]
        return tuple(stages[int(i)] for i in picks)

    @functools.cache
    def classes(self, model: str, count: int) -> tuple[int, ...]:
        """Classes to draw: all when there are at most 10, else the subjects' predictions topped up evenly."""
        handle = self.handle(model)
        total = len(handle.classes) if handle.classes else int(self.probabilities(model).shape[1])
        if total <= 10:
            return tuple(range(total))
        chosen = list(dict.fromkeys(int(i) for i in self.probabilities(model).argmax(1)))[:count]
        for i in np.linspace(0, total - 1, count + 2).astype(int)[1:-1]:
            if len(chosen) >= count:
                break
            if int(i) not in chosen:
                chosen.append(int(i))
        return tuple(chosen)

    def show(self, image: torch.Tensor) -> np.ndarray:
        """A model-sized image as a display-sized uint8 array."""
        return photo(image)


def class_name(handle: ModelHandle, index: int) -> str:
    """The name of class ``index`` (``"class N"`` when the model has none)."""
    return handle.class_name(int(index))
