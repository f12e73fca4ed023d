"""Image pages: the prediction, then every registered attribution method and a random baseline."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cnnviz import interpret
from cnnviz.gallery.cards import Card, Output, Page, slug
from cnnviz.gallery.context import RANDOM_DRAWS, Context, Subject, class_name
from cnnviz.interpret.core import attribution_map
from cnnviz.interpret.evaluate import Curves, RandomBand, deletion_insertion
from cnnviz.interpret.views import attribution_views, map_view

ATTRIBUTION_SECTION = "Attribution maps of the predicted class"


def image_page(model: str, subject: Subject) -> Page:
    """The page of one image under one model."""
    return Page(slug(f"img-{model}-{subject.name}"), f"{subject.name} ({model})", "image",
                f"What {model} looks at in {subject.name}: every attribution method of the registry on the "
                "predicted class. Insertion AUC (higher is better: the most salient pixels first onto a blurred "
                "copy) and deletion AUC (lower is better: the most salient pixels first onto the blurred copy) "
                "are shown with the band of 8 random maps on this image; a mark says where a method is not "
                "better than random. Deletion to black, which no method beats a random map on, is in "
                "cnnviz evaluate --metrics deletion_black.", strip=ATTRIBUTION_SECTION)


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


def shown_methods(names: tuple[str, ...] | None) -> list[interpret.Method]:
    """The attribution methods a budget shows, in registry order (None: all)."""
    every = interpret.methods("attribution")
    return every if names is None else [m for m in every if m.name in names]


def _at_image_size(maps: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    if maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    return maps


def against_random(band: RandomBand, curves: Curves) -> dict[str, str]:
    """A method's insertion and deletion AUCs on one image, each marked where it does not leave the random band
    on the better side."""
    shown = {}
    for metric, label, auc in (("insertion", "insertion AUC", curves.insertion_auc),
                               ("deletion", "deletion AUC (onto blur)", curves.deletion_auc)):
        mean, low, high = (float(v[0]) for v in band.interval(metric))
        mark = "" if bool(band.beats(metric, auc)[0]) else "  ✗ not better than random"
        shown[label] = f"{float(auc[0]):.3f}{mark} (random {low:.3f}-{high:.3f})"
    return shown


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
            scores = {class_name(handle, i): f"{p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist())}
            return Output([("as the model sees it", ctx.show(ctx.subjects(model)[b].image))], scores,
                          "Top-5 classes and their probabilities.")

        cards.append(Card(page, "prediction", f"{model} predicts", "forward",
                          {"model": model, "image": subject.name}, prediction, "Prediction"))
        for method in shown_methods(ctx.sizes.methods):
            options = attribution_options(method, side, ctx.sizes.attribution)

            def compute(b: int = b, method: interpret.Method = method, options: dict = options) -> Output:

                handle = ctx.handle(model)
                image = ctx.batch(model)[b:b + 1]
                found = interpret.explain_one(handle, method, image, None, names=[ctx.subjects(model)[b].name],
                                              options=options, probs=ctx.probabilities(model)[b:b + 1])
                maps = _at_image_size(found.maps, image)
                curves = deletion_insertion(handle, image, maps, None, steps=steps, deletion_to="blur")
                flat = attribution_map(maps)[0]
                predicted = found.targets[0]
                heat, blend = attribution_views(image[0], flat)
                return Output([("map", heat), ("map over the image", blend)],
                              {"explains": class_name(handle, predicted),
                               **against_random(ctx.random_band(model, b), curves)},
                              method.summary)

            cards.append(Card(page, slug(method.name), method.name, method.name,
                              {"model": model, "image": subject.name, "target": "predicted class",
                               **{k: v.default for k, v in method.options().items()}, **options,
                               "curve_steps": steps, "deletion_to": "blur", "random_draws": RANDOM_DRAWS}, compute,
                              section))

        def baseline(b: int = b) -> Output:
            from cnnviz.interpret.evaluate import random_maps

            band = ctx.random_band(model, b)
            scores = {}
            for metric, label in (("insertion", "insertion AUC"), ("deletion", "deletion AUC (onto blur)")):
                mean, low, high = (float(v[0]) for v in band.interval(metric))
                scores[label] = f"{mean:.3f} [{low:.3f}, {high:.3f}]"
            return Output([("random map", map_view(random_maps(ctx.batch(model)[b:b + 1])[0, 0]))], scores,
                          f"The band a faithful map should leave: {RANDOM_DRAWS} uniform-noise maps, mean "
                          "[central 95 %].")

        cards.append(Card(page, "random-baseline", "random maps (baseline)", "random_band",
                          {"model": model, "image": subject.name, "seed": 0, "curve_steps": steps,
                           "deletion_to": "blur", "random_draws": RANDOM_DRAWS}, baseline, section))
    return cards
