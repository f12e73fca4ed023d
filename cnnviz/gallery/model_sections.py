"""Model pages: first-layer filters, feature maps, the neuron atlas, class visualizations, feature
inversion and DeepDream."""

from __future__ import annotations

import torch.nn.functional as F

from cnnviz import interpret
from cnnviz.gallery.cards import Card, Output, Page, slug
from cnnviz.gallery.context import Context, class_name
from cnnviz.interpret.optimize import default_preset
from cnnviz.interpret.views import atlas_sheet, feature_map_grid, filter_grid, picture_grid
from cnnviz.zoo.handle import ModelHandle

INVERSION_SECTION = "Feature inversion"


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
        image = filter_grid(tiles, side=48)
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
            image = feature_map_grid(maps[0], order, columns=4)
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
            from cnnviz.interpret.inside import channel_examples

            handle = ctx.handle(model)
            data = ctx.atlas_data(model)
            top = min(sizes.atlas_top, len(data))
            atlas = interpret.neuron_atlas(handle, layer, data, top=top, bottom=0, progress=ctx.settings.progress)
            channels = atlas.top_values[:, 0].argsort(descending=True)[: sizes.atlas_channels].tolist()
            examples = list(channel_examples(handle, atlas, data, channels))
            return Output([(f"top-{top} patches of {len(examples)} channels", atlas_sheet(examples, atlas))],
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


def actmax_side(handle: ModelHandle) -> int:
    """The side to optimize at: the input size, or for a fixed-size model the side that the default
    preset's padding (``transforms.standard``) brings back to the input size."""
    if not handle.config.fixed_input:
        return handle.input_size
    for side in range(handle.input_size - 1, 0, -1):
        if side + 4 * max(1, side // 28) <= handle.input_size:
            return side
    return handle.input_size


def actmax_cards(ctx: Context, model: str) -> list[Card]:
    """Activation maximization of a set of classes (the default preset, named in the card's key)."""
    sizes = ctx.sizes
    classes = ctx.classes(model, sizes.classes)
    side = actmax_side(ctx.handle(model))

    def compute() -> Output:
        from cnnviz.interpret.optimize import actmax, class_scores

        handle = ctx.handle(model)
        pictures = actmax(handle, target=list(classes), steps=sizes.actmax_steps, size=side,
                          progress=ctx.settings.progress)
        if side != handle.input_size:  # shown and scored with the gray border the optimization saw
            border = handle.input_size - side
            pictures = F.pad(pictures, (border // 2, border - border // 2) * 2, value=0.5)
        scores = class_scores(handle, pictures, classes)
        texts = [f"{class_name(handle, c)} {p:.0%}" for c, p in zip(classes, scores["probability"])]
        sheet = picture_grid(pictures.cpu(), texts, side=160, columns=min(5, len(texts)))
        return Output([(f"{len(classes)} classes", sheet)],
                      {class_name(handle, c): f"{p:.1%}" + (" (in the top 5)" if top else " (not in the top 5)")
                       for c, p, top in zip(classes, scores["probability"], scores["in_top5"])},
                      "Images optimized from noise to be each class (Fourier parameterization, "
                      "jitter/scale/rotate transforms); numbers: the model's probability of that class.")

    handle = ctx.handle(model)
    return [Card(model_page(model).slug, "actmax", "class visualizations", "actmax",
                 {"model": model, "classes": [class_name(handle, c) for c in classes], "preset": default_preset(),
                  "steps": sizes.actmax_steps, "size": side, "seed": 0}, compute, "Class visualizations")]


def inversion_cards(ctx: Context, model: str) -> list[Card]:
    """Feature inversion of the first image from each shown layer."""
    cards = []
    subject = ctx.subjects(model)[0]
    for layer in ctx.layers(model):
        def compute(layer: str = layer) -> Output:
            from cnnviz.interpret.optimize import inversion_scores, invert

            handle = ctx.handle(model)
            image = ctx.batch(model)[:1]
            rebuilt = invert(handle, image, layer=layer, steps=ctx.sizes.inversion_steps,
                             progress=ctx.settings.progress)
            scores = inversion_scores(handle, image, rebuilt, layer)
            return Output([("original", ctx.show(image[0])), (f"rebuilt from {layer}", ctx.show(rebuilt[0]))],
                          {"normalized error": scores["error"][0],
                           "class of the reconstruction": class_name(handle, scores["reconstructed_class"][0]),
                           "class kept": scores["class_kept"][0]},
                          "The image whose embedding at this layer matches the original's, from noise.")

        cards.append(Card(model_page(model).slug, slug(f"invert-{layer}"), f"inversion from {layer}", "invert",
                          {"model": model, "layer": layer, "image": subject.name,
                           "steps": ctx.sizes.inversion_steps, "seed": 0}, compute, INVERSION_SECTION))
    return cards


def deepdream_cards(ctx: Context, model: str) -> list[Card]:
    """DeepDream on the first image at a middle layer."""
    from cnnviz.interpret.optimize import DEPTH
    from cnnviz.zoo.handle import layer_at_depth

    subject = ctx.subjects(model)[0]
    layer = layer_at_depth(ctx.handle(model).model, DEPTH)  # the method's own default layer
    # Octaves dream at smaller sizes first: a model that takes only its own size gets one octave.
    octaves = 1 if ctx.handle(model).config.fixed_input else 4

    def compute() -> Output:
        from cnnviz.interpret.optimize import deepdream

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
