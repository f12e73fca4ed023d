"""The plan of a build: every page and card, from the section functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cnnviz.gallery.attack_sections import ATTACKS, attack_cards, fooling_cards, style_cards
from cnnviz.gallery.attribution import attribution_cards, image_page
from cnnviz.gallery.cards import Card, Page
from cnnviz.gallery.context import Context
from cnnviz.gallery.dense_sections import DENSE, dense_cards, is_dense
from cnnviz.gallery.model_sections import (
    actmax_cards,
    atlas_cards,
    deepdream_cards,
    feature_map_cards,
    filter_cards,
    inversion_cards,
    model_page,
)
from cnnviz.gallery.relevance import relevance_cards
from cnnviz.gallery.settings import Settings
from cnnviz.gallery.training import training_cards, training_page
from cnnviz.zoo.core import CnnvizError

SectionFn = Callable[[Context, str], list[Card]]
MODEL_SECTIONS: list[SectionFn] = [filter_cards, feature_map_cards, atlas_cards, actmax_cards, inversion_cards,
                                   deepdream_cards]
ATTACK_SECTIONS: list[SectionFn] = [attack_cards, fooling_cards, style_cards]


@dataclass
class Plan:
    """The pages and cards of a build."""

    pages: list[Page] = field(default_factory=list)
    cards: list[Card] = field(default_factory=list)


def plan(settings: Settings) -> Plan:
    """Every page and card for ``settings`` (loads the models and images to name them; computes nothing
    heavy)."""
    ctx = Context(settings)
    result = Plan()
    dense = [model for model in dict.fromkeys(settings.models) if is_dense(ctx, model)]  # fails early on a bad name
    if dense:
        result.pages.append(DENSE)
        result.cards += [card for model in dense for card in dense_cards(ctx, model)]
    classifiers = [model for model in dict.fromkeys(settings.models) if model not in dense]
    for model in classifiers:
        for subject in ctx.subjects(model):
            result.pages.append(image_page(model, subject))
        result.cards += attribution_cards(ctx, model)
        result.cards += relevance_cards(ctx, model)
        result.pages.append(model_page(model))
        for section in MODEL_SECTIONS:
            result.cards += section(ctx, model)
        training = training_cards(ctx, model)
        if training:
            result.pages.append(training_page(model))
            result.cards += training
    attacks = [card for section in ATTACK_SECTIONS for model in classifiers for card in section(ctx, model)]
    if attacks:
        result.pages.append(ATTACKS)
        result.cards += attacks
    slugs = [p.slug for p in result.pages]
    if len(slugs) != len(set(slugs)):
        raise CnnvizError("two pages share a name: give images with different names")
    return result
