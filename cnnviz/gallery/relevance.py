"""Image pages, relevance and concepts: LRP under each composite, and the most relevant channels of the model's
layer with their conditional maps (CRP)."""

from __future__ import annotations

import torch

from cnnviz import interpret
from cnnviz.gallery.attribution import image_page
from cnnviz.gallery.cards import Card, Output, slug
from cnnviz.gallery.context import Context, class_name
from cnnviz.interpret.attribution import COMPOSITES
from cnnviz.interpret.core import attribution_map
from cnnviz.interpret.views import attribution_views, concept_panel

RELEVANCE_SECTION = "Relevance and concepts"


def relevance_cards(ctx: Context, model: str) -> list[Card]:
    """Per image: LRP with each composite (relevance summed over the image beside the explained logit), then the
    panel of the ``concepts`` most relevant channels of the model's default layer, each with what it looks for
    (the pictures made once per model for every panel's channels, :meth:`Context.concept_pictures`)."""
    cards = []
    layer, top = ctx.handle(model).default_layer, ctx.sizes.concepts
    for b, subject in enumerate(ctx.subjects(model)):
        page = image_page(model, subject).slug
        for composite in COMPOSITES:
            def lrp(b: int = b, composite: str = composite) -> Output:
                handle, image = ctx.handle(model), ctx.batch(model)[b:b + 1]
                relevance = interpret.lrp(handle, image, None, composite=composite)
                predicted = int(ctx.probabilities(model)[b].argmax())
                with torch.no_grad():
                    logit = float(handle(image)[0, predicted])
                heat, blend = attribution_views(image[0], attribution_map(relevance)[0])
                return Output([("relevance", heat), ("relevance over the image", blend)],
                              {"explains": class_name(handle, predicted), "relevance summed": f"{relevance.sum():.3f}",
                               "logit": f"{logit:.3f}"},
                              f"LRP ({composite}) on a canonized copy; where the rules conserve, the relevance sums "
                              "to the logit (biases take the rest).")

            cards.append(Card(page, slug(f"lrp-{composite}"), f"LRP {composite}", "lrp",
                              {"model": model, "image": subject.name, "target": "predicted class",
                               "composite": composite}, lrp, RELEVANCE_SECTION))
        if layer is None:
            continue

        def concepts(b: int = b) -> Output:
            handle, found = ctx.handle(model), ctx.concepts(model, b)
            predicted = int(ctx.probabilities(model)[b].argmax())
            panel = concept_panel(ctx.batch(model)[b], found, 0, f"{class_name(handle, predicted)}: top {top} "
                                  f"channels of {layer}", columns=4, dictionary=ctx.concept_pictures(model))
            return Output([(f"the {top} most relevant channels of {layer}", panel)],
                          {f"channel {int(c)}": f"{float(s):+.1%}" for c, s in zip(found.channels[0],
                                                                                  found.shares[0])},
                          "Each channel's share of the relevance reaching the layer, where in the image its "
                          "relevance comes from (positive part, each map on its own scale), and what it looks for "
                          f"(a feature visualization, {ctx.sizes.concept_steps} steps).")

        cards.append(Card(page, "concepts", f"concepts of {layer}", "concepts",
                          {"model": model, "image": subject.name, "target": "predicted class", "layer": layer,
                           "top": top, "backend": "lrp", "composite": "epsilon_plus_flat",
                           "picture_steps": ctx.sizes.concept_steps}, concepts, RELEVANCE_SECTION))
    return cards
