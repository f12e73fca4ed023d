"""The segmentation and detection page: dense models explained, the predicted mask or boxes beside each map.

A segmentation model explains, on each scene, the class it predicts most (besides background) over the
pixels where it predicts it; a detector its best detection (``cnnviz explain --box 1``). The shipped
``fashion_seg`` and ``fashion_det`` are shown on held-out Fashion-MNIST scenes; other dense models on the
gallery's images.
"""

from __future__ import annotations

import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.gallery.cards import Card, Output, Page, slug
from cnnviz.gallery.context import Context, Subject
from cnnviz.interpret.views import attribution_views, explained_overlay, photo, segmentation_overlay
from cnnviz.zoo.data import DATASETS
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.data import fashion_scenes
from cnnviz.zoo.handle import ModelHandle

DENSE = Page("dense", "segmentation and detection", "dense",
             "Segmentation models and detectors explained: what the model predicts (its mask or its boxes), what "
             "is explained (a class over the pixels where the model predicts it, or its best detection), and the "
             "map over the image.")
# Methods shown, with options sized for small inputs (occlusion windows a quarter of a 64 px scene).
DENSE_METHODS = {"gradcam": {}, "occlusion": {"window": 16, "stride": 8}, "gradient": {}}
SHOWN_SCORE = 0.3  # detections drawn: the confident ones (numbered as --box takes them: best first)
SCENE_SEED = 20  # held-out scenes from Fashion-MNIST's test split, none of the logs' test scenes


def is_dense(ctx: Context, model: str) -> bool:
    """Whether ``model`` is a segmentation model or a detector (shown here, not on the classifier pages)."""
    return ctx.handle(model).config.task != "classification"


def dense_subjects(ctx: Context, model: str) -> tuple[Subject, ...]:
    """Held-out Fashion-MNIST scenes for the shipped scene models, else the gallery's images."""
    handle = ctx.handle(model)
    if ctx.settings.images is not None or not (handle.config.source or "").startswith("zoo:fashion_"):
        return ctx.subjects(model)
    if not DATASETS["fashion-mnist"].default_dir.is_dir():  # the four scenes that ship instead
        return tuple(Subject(name, zoo.load_image(name)) for name in zoo.scene_names()[:ctx.sizes.images])
    scenes = fashion_scenes(ctx.sizes.images, split="test", canvas=handle.input_size, items=(2, 3), seed=SCENE_SEED)
    return tuple(Subject(f"held-out scene {i + 1}", image) for i, image in enumerate(scenes.images))


def explained_target(handle: ModelHandle, image: torch.Tensor) -> object:
    """What the page explains on ``image``: the best detection, or the most predicted class besides class 0
    over the pixels where the model predicts it."""
    if handle.config.task == "detection":
        return interpret.dense_target(handle, image[None].to(handle.device), box=1)
    with torch.no_grad():
        labels = handle(image[None].to(handle.device))[0].argmax(0).cpu()
    counts = torch.bincount(labels.flatten(), minlength=2)
    counts[0] = 0
    if not counts.any():
        raise CnnvizError(f"{handle.name} predicts only class 0 on this image: nothing to explain")
    return interpret.dense_target(handle, image[None].to(handle.device), int(counts.argmax()))


def dense_cards(ctx: Context, model: str) -> list[Card]:
    """One card per method: for each image the prediction, what is explained, and the map over the image."""
    subjects = dense_subjects(ctx, model)
    cards = []
    for name, options in DENSE_METHODS.items():

        def compute(name: str = name, options: dict = options) -> Output:
            handle = ctx.handle(model)
            method = interpret.get_method(name)
            panels, scores = [], {}
            for subject in subjects:
                image = subject.image
                explained = explained_target(handle, image)
                batch = image[None].to(handle.device)
                found = interpret.explain_one(handle, method, batch, explained, names=[subject.name],
                                              options=options)
                flat = found.flat[0].detach().cpu()
                if handle.config.task == "detection":
                    shown = found.detections[0][found.detections[0][:, 4] >= SHOWN_SCORE]
                    panels.append((f"{subject.name}: detections", photo(explained_overlay(
                        image, explained, shown, handle.class_name))))
                else:
                    with torch.no_grad():
                        labels = handle(batch)[0].argmax(0).cpu()
                    panels.append((f"{subject.name}: predicted mask", photo(segmentation_overlay(image, labels))))
                    panels.append((f"{subject.name}: explained region", photo(explained_overlay(image, explained))))
                panels.append((f"{subject.name}: {name} over the image", attribution_views(image, flat)[1]))
                record = found.records[0]
                scores[subject.name] = f"{record['explained']}, score {record['score']:.3g}"
            return Output(panels, scores, "Each image: what the model predicts, what is explained, and the map "
                                          "over the image.")

        cards.append(Card(DENSE.slug, slug(f"{name}-{model}"), f"{name} on {model}", name,
                          {"model": model, "images": [s.name for s in subjects], "options": options, "scene_seed": SCENE_SEED},
                          compute, "Dense explanations"))
    return cards
