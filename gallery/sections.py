"""What the gallery shows: section functions that turn settings into pages and cards.

Each section function takes the shared :class:`Context` (lazily loaded
models, their images and predictions) and returns cards. Attribution cards
come from the method registry (``interpret.methods("attribution")``), so a
newly registered method appears without an edit here. Sections whose
modules are not installed are left out, and the build says so.

Sizes and step counts come from a :class:`Budget`: ``QUICK`` fits two CPU
cores in a few minutes, ``FULL`` is meant for a GPU.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import interpret
import zoo
from gallery.cards import Card, Output, Page, slug
from interpret.render import attribution_map, caption, colorize, grid, hstack, overlay, to_uint8
from zoo.errors import CnnvizError
from zoo.handle import ModelHandle

DEFAULT_MODELS = ("efficientnet_lite0", "fashion_cnn")
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "hubble")
DISPLAY = 224  # side small images are enlarged to (nearest) so 28 px pictures can be seen
TRAINING_LOGS = {"fashion_cnn": "zoo.fashion:fashion_log_path"}  # models that ship a training log


@dataclass(frozen=True)
class Budget:
    """Sizes and step counts of one gallery mode.

    Attributes:
        images: images per model (image pages).
        attribution: option overrides for attribution methods, applied where a method has the option.
        curve_steps: points on the deletion/insertion curves.
        layers: layers shown per model (feature maps use the first two).
        atlas_images: most images the neuron atlas scans for a dataset model.
        atlas_channels: channels drawn per atlas layer (the most strongly firing).
        atlas_top: patches per channel.
        classes: classes drawn by activation maximization (all when a model has at most 10).
        actmax_steps: activation-maximization steps.
        inversion_steps: feature-inversion steps per layer.
        dream_steps: DeepDream steps per octave.
        attack_steps: PGD steps.
        fooling_steps: the most fooling steps; fooling_classes: classes fooled (all when at most 10).
        style_steps: style-transfer steps; style_size: its image side.
    """

    images: int
    attribution: dict[str, Any]
    curve_steps: int
    layers: int
    atlas_images: int
    atlas_channels: int
    atlas_top: int
    classes: int
    actmax_steps: int
    inversion_steps: int
    dream_steps: int
    attack_steps: int
    fooling_steps: int
    fooling_classes: int
    style_steps: int
    style_size: int


QUICK = Budget(images=3, attribution={"samples": 10, "steps": 16, "window": 48, "stride": 24}, curve_steps=16,
               layers=3, atlas_images=2000, atlas_channels=8, atlas_top=5, classes=3, actmax_steps=256,
               inversion_steps=96, dream_steps=10, attack_steps=10, fooling_steps=100, fooling_classes=2,
               style_steps=60, style_size=224)
FULL = Budget(images=6, attribution={}, curve_steps=32, layers=5, atlas_images=10000, atlas_channels=16,
              atlas_top=8, classes=8, actmax_steps=512, inversion_steps=300, dream_steps=10, attack_steps=40,
              fooling_steps=300, fooling_classes=6, style_steps=300, style_size=320)


@dataclass
class Settings:
    """What to build.

    Attributes:
        models: zoo names (default: the models that ship, efficientnet_lite0 and fashion_cnn).
        images: image sources for every model (default: scikit-image photos; Fashion-MNIST test
            images for a 28 px gray model when the dataset is installed).
        quick: the quick budget (2 CPU cores) instead of the full one (GPU).
        device: torch device (default: cuda, then mps, then cpu).
        progress: progress bars inside the methods.
        budget: override the budget (tests use tiny ones).
    """

    models: Sequence[str] = DEFAULT_MODELS
    images: Sequence[str] | None = None
    quick: bool = False
    device: str | None = None
    progress: bool = False
    budget: Budget | None = None

    @property
    def sizes(self) -> Budget:
        """The budget in force."""
        return self.budget or (QUICK if self.quick else FULL)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for the manifest."""
        return {"models": list(self.models), "images": None if self.images is None else list(self.images),
                "mode": "quick" if self.quick else "full", "device": self.device}


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (optional sections)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------- drawing helpers

def enlarge(image: np.ndarray, side: int = DISPLAY) -> np.ndarray:
    """Scale so the longer side is about ``side``: up by a whole factor without blur, down by area."""
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest < side:
        factor = max(1, side // longest)
        return cv2.resize(image, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    if longest > side:
        return cv2.resize(image, (max(1, round(w * side / longest)), max(1, round(h * side / longest))),
                          interpolation=cv2.INTER_AREA)
    return image


def fit(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled into a ``side`` square (aspect kept), padded with white."""
    image = enlarge(image, side)
    canvas = np.full((side, side, 3), 255, np.uint8)
    h, w = min(side, image.shape[0]), min(side, image.shape[1])
    canvas[:h, :w] = image[:h, :w]
    return canvas


def vstack(images: Sequence[np.ndarray], *, pad: int = 6) -> np.ndarray:
    """Images one below the other, left-aligned on white."""
    images = [to_uint8(im) for im in images]
    width = max(im.shape[1] for im in images)
    canvas = np.full((sum(im.shape[0] for im in images) + pad * (len(images) - 1), width, 3), 255, np.uint8)
    y = 0
    for im in images:
        canvas[y:y + im.shape[0], :im.shape[1]] = im
        y += im.shape[0] + pad
    return canvas


def tiles_with_captions(tiles: Sequence[np.ndarray], texts: Sequence[str], columns: int) -> np.ndarray:
    """Equal tiles, each captioned, in a grid (captions padded to one height)."""
    captioned = [caption(t, s) for t, s in zip(tiles, texts)]
    height = max(t.shape[0] for t in captioned)
    same = [np.concatenate([t, np.full((height - t.shape[0], t.shape[1], 3), 255, np.uint8)]) for t in captioned]
    return grid(same, columns=columns, pad=4)


# ---------------------------------------------------------------- shared state

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
        from interpret.atlas import TensorImages

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
        return enlarge(to_uint8(image))


def _name(handle: ModelHandle, index: int) -> str:
    return handle.class_name(int(index))


# ---------------------------------------------------------------- image pages: attribution

ATTRIBUTION_SECTION = "Attribution maps of the predicted class"
INVERSION_SECTION = "Feature inversion"


def image_page(model: str, subject: Subject) -> Page:
    """The page of one image under one model."""
    return Page(slug(f"img-{model}-{subject.name}"), f"{subject.name} ({model})", "image",
                f"What {model} looks at in {subject.name}: every attribution method of the registry on the "
                "predicted class, with deletion AUC (lower is better) and insertion AUC (higher is better) "
                "next to a random map.", strip=ATTRIBUTION_SECTION)


def attribution_options(method: interpret.Method, side: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The budget's overrides the method takes; occlusion windows scaled to the model's input side."""
    options = method.options()
    chosen = {k: v for k, v in overrides.items() if k in options}
    for key in ("window", "stride"):
        if key in options:
            base = chosen.get(key, options[key].default)
            if isinstance(base, int) and side != 224:
                chosen[key] = max(1 if key == "stride" else 2, round(base * side / 224))
    return chosen


def _at_image_size(maps: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    if maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    return maps


def attribution_cards(ctx: Context, model: str) -> list[Card]:
    """Per image: the prediction, then every registered attribution method and a random baseline."""
    cards = []
    steps = ctx.sizes.curve_steps
    side = ctx.handle(model).input_size
    for b, subject in enumerate(ctx.subjects(model)):
        page = image_page(model, subject).slug
        section = ATTRIBUTION_SECTION

        def prediction(b: int = b) -> Output:
            handle = ctx.handle(model)
            probs = ctx.probabilities(model)[b]
            top = probs.topk(min(5, probs.numel()))
            scores = {_name(handle, i): f"{p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist())}
            return Output([("as the model sees it", ctx.show(ctx.subjects(model)[b].image))], scores,
                          "Top-5 classes and their probabilities.")

        cards.append(Card(page, "prediction", f"{model} predicts", "forward",
                          {"model": model, "image": subject.name}, prediction, "Prediction"))
        for method in interpret.methods("attribution"):
            options = attribution_options(method, side, ctx.sizes.attribution)

            def compute(b: int = b, method: interpret.Method = method, options: dict = options) -> Output:
                from interpret.faithfulness import deletion_insertion

                handle = ctx.handle(model)
                image = ctx.batch(model)[b:b + 1]
                maps = _at_image_size(method.fn(handle, image, None, **options), image)
                curves = deletion_insertion(handle, image, maps, None, steps=steps)
                flat = attribution_map(maps)[0]
                predicted = int(ctx.probabilities(model)[b].argmax())
                heat = enlarge(colorize(flat, "jet", percentile=99.5))
                blend = enlarge(overlay(image[0], flat, percentile=99.5))
                return Output([("map", heat), ("map over the image", blend)],
                              {"explains": _name(handle, predicted),
                               "deletion AUC": float(curves.deletion_auc[0]),
                               "insertion AUC": float(curves.insertion_auc[0])},
                              method.summary)

            cards.append(Card(page, slug(method.name), method.name, method.name,
                              {"model": model, "image": subject.name, "target": "predicted class",
                               **{k: v.default for k, v in method.options().items()}, **options,
                               "curve_steps": steps}, compute, section))

        def baseline(b: int = b) -> Output:
            from interpret.faithfulness import deletion_insertion, random_maps

            handle = ctx.handle(model)
            image = ctx.batch(model)[b:b + 1]
            maps = random_maps(image)
            curves = deletion_insertion(handle, image, maps, None, steps=steps)
            return Output([("random map", enlarge(colorize(maps[0, 0], "jet")))],
                          {"deletion AUC": float(curves.deletion_auc[0]),
                           "insertion AUC": float(curves.insertion_auc[0])},
                          "The baseline a faithful map should beat: uniform noise.")

        cards.append(Card(page, "random-baseline", "random map (baseline)", "random_maps",
                          {"model": model, "image": subject.name, "seed": 0, "curve_steps": steps}, baseline,
                          section))
    return cards


# ---------------------------------------------------------------- model pages

def model_page(model: str) -> Page:
    """The page of one model."""
    return Page(slug(f"model-{model}"), f"model {model}", "model",
                f"Inside {model}: its first-layer filters, feature maps, the image patches that excite "
                "channels most (neuron atlas), pictures optimized to be each class, and what its layers "
                "remember of an image.", strip=INVERSION_SECTION)


def filter_cards(ctx: Context, model: str) -> list[Card]:
    """The first conv layer's filters."""
    def compute() -> Output:
        handle = ctx.handle(model)
        name, weight = next(iter(interpret.conv_layers(handle)))
        tiles = interpret.filters(handle, name).cpu()[:256]
        scale = max(1, 48 // max(tiles.shape[-2:]))
        image = grid(list(tiles), pad=2, scale=scale)
        return Output([(f"{len(tiles)} filters of {name}", image)],
                      {"layer": name, "filters": int(weight.weight.shape[0]),
                       "size": f"{tiles.shape[-2]}x{tiles.shape[-1]}"},
                      "Each filter scaled on its own; the first layer reads pixels, so colours are real.")

    return [Card(model_page(model).slug, "filters", "first-layer filters", "filters",
                 {"model": model, "layer": "first conv", "mode": "auto"}, compute, "Filters")]


def feature_map_cards(ctx: Context, model: str) -> list[Card]:
    """The strongest channels of the first two shown layers, on the first image."""
    cards = []
    subject = ctx.subjects(model)[0]
    for layer in ctx.layers(model)[:2]:
        def compute(layer: str = layer) -> Output:
            handle = ctx.handle(model)
            maps = interpret.feature_maps(handle, ctx.batch(model)[:1], layer=layer).cpu()
            order = interpret.channel_order(maps)[0, :16].tolist()
            tiles = [enlarge(colorize(maps[0, c], "viridis"), 96) for c in order]
            image = tiles_with_captions(tiles, [f"c{c} {maps[0, c].mean():.2f}" for c in order], 4)
            return Output([(f"{subject.name} at {layer}", ctx.show(ctx.batch(model)[0])),
                           (f"16 strongest of {maps.shape[1]} channels", image)],
                          {"channels": int(maps.shape[1]), "map size": f"{maps.shape[2]}x{maps.shape[3]}"},
                          "Channels sorted by mean activation, strongest first.")

        cards.append(Card(model_page(model).slug, slug(f"maps-{layer}"), f"feature maps of {layer}",
                          "feature_maps", {"model": model, "layer": layer, "image": subject.name,
                                           "channels": 16, "sort": "mean"}, compute, "Feature maps"))
    return cards


def atlas_cards(ctx: Context, model: str) -> list[Card]:
    """Neuron atlas: per shown layer, the top patches of its most strongly firing channels."""
    cards = []
    sizes = ctx.sizes
    for layer in ctx.layers(model):
        def compute(layer: str = layer) -> Output:
            from interpret.atlas import channel_examples

            handle = ctx.handle(model)
            data = ctx.atlas_data(model)
            top = min(sizes.atlas_top, len(data))
            atlas = interpret.neuron_atlas(handle, layer, data, top=top, bottom=0, progress=ctx.settings.progress)
            channels = atlas.top_values[:, 0].argsort(descending=True)[: sizes.atlas_channels].tolist()
            rows = []
            for ex in channel_examples(handle, atlas, data, channels):
                patches = [fit(to_uint8(p), 64) for p in ex.top_patches]
                values = atlas.top_values[ex.channel].tolist()
                rows.append(caption(hstack(patches, pad=2), f"channel {ex.channel}: "
                                    + " ".join(f"{v:.1f}" for v in values)))
            return Output([(f"top-{top} patches of {len(rows)} channels", vstack(rows))],
                          {"images scanned": atlas.count, "channels": atlas.channels,
                           "dead channels": len(atlas.dead),
                           "receptive field": "x".join(map(str, atlas.field.size)) if atlas.field else "unknown"},
                          "Each row: the image patches (receptive field of the maximal unit) that excite one "
                          "channel most, with the activations.")

        cards.append(Card(model_page(model).slug, slug(f"atlas-{layer}"), f"neuron atlas of {layer}", "neuron_atlas",
                          {"model": model, "layer": layer, "data": "dataset" if ctx.dataset(model) is not None
                           else "scikit-image photos", "images": sizes.atlas_images, "top": sizes.atlas_top,
                           "channels": sizes.atlas_channels}, compute, "Neuron atlas"))
    return cards


def fixed_input(handle: ModelHandle) -> bool:
    """Whether the model only takes its own input size (a flatten before a dense layer, no global pooling)."""
    side = handle.input_size + 4
    try:
        with torch.no_grad():
            handle(torch.zeros(1, handle.in_channels, side, side, device=handle.device))
    except RuntimeError:
        return True
    return False


def actmax_side(handle: ModelHandle) -> int:
    """The side to optimize at: the input size, or for a fixed-size model the side that the robust
    preset's padding (``transforms.standard``) brings back to the input size."""
    if not fixed_input(handle):
        return handle.input_size
    for side in range(handle.input_size - 1, 0, -1):
        if side + 4 * max(1, side // 28) <= handle.input_size:
            return side
    return handle.input_size


def actmax_cards(ctx: Context, model: str) -> list[Card]:
    """Activation maximization of a set of classes (robust preset)."""
    sizes = ctx.sizes
    classes = ctx.classes(model, sizes.classes)
    side = actmax_side(ctx.handle(model))

    def compute() -> Output:
        from interpret.actmax import actmax, class_scores

        handle = ctx.handle(model)
        pictures = actmax(handle, target=list(classes), steps=sizes.actmax_steps, size=side,
                          progress=ctx.settings.progress)
        if side != handle.input_size:  # shown and scored with the gray border the optimization saw
            border = handle.input_size - side
            pictures = F.pad(pictures, (border // 2, border - border // 2) * 2, value=0.5)
        scores = class_scores(handle, pictures, classes)
        tiles = [enlarge(to_uint8(p), 160) for p in pictures.cpu()]
        texts = [f"{_name(handle, c)} {p:.0%}" for c, p in zip(classes, scores["probability"])]
        return Output([(f"{len(classes)} classes", tiles_with_captions(tiles, texts, min(5, len(tiles))))],
                      {_name(handle, c): f"{p:.1%}" + (" (in the top 5)" if top else " (not in the top 5)")
                       for c, p, top in zip(classes, scores["probability"], scores["in_top5"])},
                      "Images optimized from noise to be each class (Fourier parameterization, "
                      "jitter/scale/rotate transforms); numbers: the model's probability of that class.")

    handle = ctx.handle(model)
    return [Card(model_page(model).slug, "actmax", "class visualizations", "actmax",
                 {"model": model, "classes": [_name(handle, c) for c in classes], "preset": "robust",
                  "steps": sizes.actmax_steps, "size": side, "seed": 0}, compute, "Class visualizations")]


def inversion_cards(ctx: Context, model: str) -> list[Card]:
    """Feature inversion of the first image from each shown layer (needs ``interpret.inversion``)."""
    if not has_module("interpret.inversion"):
        return []
    cards = []
    subject = ctx.subjects(model)[0]
    for layer in ctx.layers(model):
        def compute(layer: str = layer) -> Output:
            from interpret.inversion import invert, inversion_scores

            handle = ctx.handle(model)
            image = ctx.batch(model)[:1]
            rebuilt = invert(handle, image, layer=layer, steps=ctx.sizes.inversion_steps,
                             progress=ctx.settings.progress)
            scores = inversion_scores(handle, image, rebuilt, layer)
            return Output([("original", ctx.show(image[0])), (f"rebuilt from {layer}", ctx.show(rebuilt[0]))],
                          {"normalized error": scores["error"][0],
                           "class of the reconstruction": _name(handle, scores["reconstructed_class"][0]),
                           "class kept": scores["class_kept"][0]},
                          "The image whose embedding at this layer matches the original's, from noise.")

        cards.append(Card(model_page(model).slug, slug(f"invert-{layer}"), f"inversion from {layer}", "invert",
                          {"model": model, "layer": layer, "image": subject.name,
                           "steps": ctx.sizes.inversion_steps, "seed": 0}, compute, INVERSION_SECTION))
    return cards


def deepdream_cards(ctx: Context, model: str) -> list[Card]:
    """DeepDream on the first image at a middle layer (needs ``interpret.deepdream``)."""
    if not has_module("interpret.deepdream"):
        return []
    from interpret.deepdream import DEPTH
    from zoo.layers import layer_at_depth

    subject = ctx.subjects(model)[0]
    layer = layer_at_depth(ctx.handle(model).model, DEPTH)  # the method's own default layer
    # Octaves dream at smaller sizes first: a model that takes only its own size gets one octave.
    octaves = 1 if fixed_input(ctx.handle(model)) else 4

    def compute() -> Output:
        from interpret.deepdream import deepdream

        handle = ctx.handle(model)
        image = ctx.batch(model)[:1]
        dreamt = deepdream(handle, image, layer=layer, octaves=octaves, steps=ctx.sizes.dream_steps,
                           jitter=max(1, handle.input_size // 7), progress=ctx.settings.progress)
        return Output([("original", ctx.show(image[0])), (f"dreamt at {layer}", ctx.show(dreamt[0]))], {},
                      "Gradient ascent on the photo to amplify what the layer already sees, octave by octave.")

    return [Card(model_page(model).slug, "deepdream", f"DeepDream at {layer}", "dream",
                 {"model": model, "layer": layer, "image": subject.name, "octaves": octaves,
                  "steps": ctx.sizes.dream_steps, "jitter": max(1, ctx.handle(model).input_size // 7)},
                 compute, "DeepDream")]


# ---------------------------------------------------------------- attacks, fooling, style

ATTACKS = Page("attacks", "attacks, fooling and style", "attacks",
               "Adversarial examples (the change is amplified to be seen), fooling images a model labels with "
               "near certainty, and style transfer.")


def attack_cards(ctx: Context, model: str) -> list[Card]:
    """Untargeted L-inf PGD on the model's images (needs ``interpret.adversarial``)."""
    if not has_module("interpret.adversarial"):
        return []
    eps = 4 / 255 if ctx.handle(model).in_channels == 3 else 16 / 255

    def compute() -> Output:
        from interpret.adversarial import attack_report, pgd
        from interpret.views import attack_panel

        handle = ctx.handle(model)
        images = ctx.batch(model)
        adversarial = pgd(handle, images, eps=eps, steps=ctx.sizes.attack_steps, progress=ctx.settings.progress)
        report = attack_report(handle, images, adversarial)
        scale = max(1, 160 // handle.input_size)
        panels = [(s.name, attack_panel(handle, images, adversarial, report, i, scale=scale))
                  for i, s in enumerate(ctx.subjects(model))]
        scores = {"success rate": f"{report.success_rate:.0%}"}
        for i, s in enumerate(ctx.subjects(model)):
            scores[s.name] = (f"{_name(handle, report.original[i])} {report.original_confidence[i]:.1%} -> "
                              f"{_name(handle, report.adversarial[i])} {report.adversarial_confidence[i]:.1%}")
        return Output(panels, scores, "Original | difference, amplified | adversarial image, with the class "
                                      "and confidence of each.")

    return [Card(ATTACKS.slug, slug(f"pgd-{model}"), f"PGD on {model}", "pgd",
                 {"model": model, "eps": round(eps, 5), "norm": "linf", "steps": ctx.sizes.attack_steps,
                  "images": [s.name for s in ctx.subjects(model)], "seed": 0}, compute, "Adversarial examples")]


def fooling_cards(ctx: Context, model: str) -> list[Card]:
    """Fooling images from noise (needs ``interpret.fooling``)."""
    if not has_module("interpret.fooling"):
        return []
    classes = ctx.classes(model, ctx.sizes.fooling_classes)

    def compute() -> Output:
        from interpret.fooling import fool

        handle = ctx.handle(model)
        result = fool(handle, list(classes), steps=ctx.sizes.fooling_steps, progress=ctx.settings.progress)
        tiles = [enlarge(to_uint8(im), 160) for im in result.images.cpu()]
        texts = [f"{_name(handle, c)} {p:.1%}" for c, p in zip(result.classes.tolist(), result.confidence.tolist())]
        scores = {_name(handle, c): f"{p:.2%} after {s} steps" if s >= 0 else f"{p:.2%} (threshold not reached)"
                  for c, p, s in zip(result.classes.tolist(), result.confidence.tolist(), result.steps.tolist())}
        return Output([(f"{len(tiles)} fooling images", tiles_with_captions(tiles, texts, min(5, len(tiles))))],
                      scores, f"Noise pushed until the model gives each class at least {result.threshold:.1%}.")

    handle = ctx.handle(model)
    return [Card(ATTACKS.slug, slug(f"fooling-{model}"), f"fooling images for {model}", "fool",
                 {"model": model, "classes": [_name(handle, c) for c in classes], "steps": ctx.sizes.fooling_steps,
                  "start": "noise", "seed": 0}, compute, "Fooling images")]


def style_cards(ctx: Context, model: str) -> list[Card]:
    """Style transfer of a photo with the model's features (needs ``interpret.style``; colour models only)."""
    if not has_module("interpret.style") or ctx.handle(model).in_channels != 3:
        return []
    content, style = "chelsea", "immunohistochemistry"
    side = ctx.sizes.style_size

    def compute() -> Output:
        from interpret.style import style_transfer

        handle = ctx.handle(model)
        content_image = zoo.load_image(content)
        style_image = zoo.load_image(style)
        result = style_transfer(handle, content_image[None].to(handle.device), style=style_image.to(handle.device),
                                size=side, steps=ctx.sizes.style_steps, progress=ctx.settings.progress)
        return Output([("content", fit(to_uint8(content_image), side)), ("style", fit(to_uint8(style_image), side)),
                       ("result", to_uint8(result.images[0]))], {},
                      "The content's layout painted with the style's textures (Gram matrices of softmax-smoothed "
                      "features).")

    return [Card(ATTACKS.slug, slug(f"style-{model}"), f"style transfer with {model}", "style",
                 {"model": model, "content": content, "style": style, "steps": ctx.sizes.style_steps,
                  "size": side}, compute, "Style transfer")]


# ---------------------------------------------------------------- training

def training_page(model: str) -> Page:
    """The page of a model's training log."""
    return Page(slug(f"training-{model}"), f"training {model}", "training",
                f"How {model} was trained: curves per epoch, the confusion matrix on the test set, gradient "
                "norms per layer and activation sparsity, from the training log that ships with it.")


def training_cards(ctx: Context, model: str) -> list[Card]:
    """Curves and diagnostics from a shipped training log (only models in ``TRAINING_LOGS``)."""
    if model not in TRAINING_LOGS:
        return []
    module_name, function = TRAINING_LOGS[model].split(":")
    path = getattr(importlib.import_module(module_name), function)()
    from interpret.charts import to_array
    from interpret.views import training_report
    from zoo.training_log import TrainingLog

    log = TrainingLog.read(path)
    page = training_page(model).slug
    params = {"model": model, "log": path.name, "command": log.command}
    figures = training_report(log, title=f"{model} on {log.dataset.name}")

    def curves() -> Output:
        return Output([("loss and accuracy per epoch", to_array(figures["curves"]))],
                      {"epochs": len(log.history), "best epoch": log.best_epoch,
                       "test accuracy": f"{log.test.accuracy:.2%}", "training seconds": log.train_seconds,
                       "trained on": log.environment.get("device", "?")},
                      "Training against validation; a shaded region would mark overfitting.")

    def confusion() -> Output:
        return Output([("test set", to_array(figures["confusion"]))],
                      {"test images": int(sum(map(sum, log.confusion_matrix)))},
                      "Rows: true class; columns: predicted class.")

    def gradients() -> Output:
        return Output([("last epoch", to_array(figures["gradients"]))], {},
                      "Gradient norm of each layer's parameters: vanishing or exploding gradients show here.")

    def activations() -> Output:
        return Output([("activations", to_array(figures["activations"]))], {},
                      "Share of zero outputs and of units never active on the test set (dead ReLUs).")

    drawn = {"curves": (curves, "training curves", "Training"), "confusion": (confusion, "confusion matrix", "Diagnostics"),
             "gradients": (gradients, "gradient norms", "Diagnostics"),
             "activations": (activations, "activation sparsity", "Diagnostics")}
    return [Card(page, kind, drawn[kind][1], "training_report", {**params, "chart": kind}, drawn[kind][0],
                 drawn[kind][2]) for kind in figures]


# ---------------------------------------------------------------- the plan

SectionFn = Callable[[Context, str], list[Card]]
MODEL_SECTIONS: list[SectionFn] = [filter_cards, feature_map_cards, atlas_cards, actmax_cards, inversion_cards,
                                   deepdream_cards]
ATTACK_SECTIONS: list[SectionFn] = [attack_cards, fooling_cards, style_cards]
OPTIONAL = {"feature inversion": "interpret.inversion", "DeepDream": "interpret.deepdream",
            "adversarial examples": "interpret.adversarial", "fooling images": "interpret.fooling",
            "style transfer": "interpret.style"}


@dataclass
class Plan:
    """The pages and cards of a build, and the sections left out (module not installed)."""

    pages: list[Page] = field(default_factory=list)
    cards: list[Card] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def plan(settings: Settings) -> Plan:
    """Every page and card for ``settings`` (loads the models and images to name them; computes nothing
    heavy)."""
    ctx = Context(settings)
    result = Plan(missing=[name for name, module in OPTIONAL.items() if not has_module(module)])
    for model in dict.fromkeys(settings.models):
        ctx.handle(model)  # fail early on a bad name
        for subject in ctx.subjects(model):
            result.pages.append(image_page(model, subject))
        result.cards += attribution_cards(ctx, model)
        result.pages.append(model_page(model))
        for section in MODEL_SECTIONS:
            result.cards += section(ctx, model)
        training = training_cards(ctx, model)
        if training:
            result.pages.append(training_page(model))
            result.cards += training
    attacks = [card for section in ATTACK_SECTIONS for model in dict.fromkeys(settings.models)
               for card in section(ctx, model)]
    if attacks:
        result.pages.append(ATTACKS)
        result.cards += attacks
    slugs = [p.slug for p in result.pages]
    if len(slugs) != len(set(slugs)):
        raise CnnvizError("two pages share a name: give images with different names")
    return result


def with_budget(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with some budget fields changed (tests and benchmarks)."""
    return replace(settings, budget=replace(settings.sizes, **changes))
