"""The attacks page: adversarial examples, fooling images and style transfer."""

from __future__ import annotations

from cnnviz import zoo
from cnnviz.gallery.cards import Card, Output, Page, slug
from cnnviz.gallery.context import Context, class_name
from cnnviz.interpret.views import picture_grid, style_panel

ATTACKS = Page("attacks", "attacks, fooling and style", "attacks",
               "Adversarial examples (the change is amplified to be seen), fooling images a model labels with "
               "near certainty, and style transfer.")


def attack_cards(ctx: Context, model: str) -> list[Card]:
    """Untargeted L-inf PGD on the model's images."""
    eps = 4 / 255 if ctx.handle(model).in_channels == 3 else 16 / 255

    def compute() -> Output:
        from cnnviz.interpret.attack import attack_report, pgd
        from cnnviz.interpret.views import attack_panel

        handle = ctx.handle(model)
        images = ctx.batch(model)
        adversarial = pgd(handle, images, eps=eps, steps=ctx.sizes.attack_steps, progress=ctx.settings.progress)
        report = attack_report(handle, images, adversarial)
        scale = max(1, 160 // handle.input_size)
        panels = [(s.name, attack_panel(handle, images, adversarial, report, i, scale=scale))
                  for i, s in enumerate(ctx.subjects(model))]
        scores = {"success rate": f"{report.success_rate:.0%}"}
        for i, s in enumerate(ctx.subjects(model)):
            scores[s.name] = (f"{class_name(handle, report.original[i])} {report.original_confidence[i]:.1%} -> "
                              f"{class_name(handle, report.adversarial[i])} {report.adversarial_confidence[i]:.1%}")
        return Output(panels, scores, "Original | difference, amplified | adversarial image, with the class "
                                      "and confidence of each.")

    return [Card(ATTACKS.slug, slug(f"pgd-{model}"), f"PGD on {model}", "pgd",
                 {"model": model, "eps": round(eps, 5), "norm": "linf", "steps": ctx.sizes.attack_steps,
                  "images": [s.name for s in ctx.subjects(model)], "seed": 0}, compute, "Adversarial examples")]


def fooling_cards(ctx: Context, model: str) -> list[Card]:
    """Fooling images from noise."""
    classes = ctx.classes(model, ctx.sizes.fooling_classes)

    def compute() -> Output:
        from cnnviz.interpret.attack import fool

        handle = ctx.handle(model)
        result = fool(handle, list(classes), steps=ctx.sizes.fooling_steps, progress=ctx.settings.progress)
        texts = [f"{class_name(handle, c)} {p:.1%}" for c, p in zip(result.classes.tolist(), result.confidence.tolist())]
        scores = {class_name(handle, c): f"{p:.2%} after {s} steps" if s >= 0 else f"{p:.2%} (threshold not reached)"
                  for c, p, s in zip(result.classes.tolist(), result.confidence.tolist(), result.steps.tolist())}
        sheet = picture_grid(result.images.cpu(), texts, side=160, columns=min(5, len(texts)))
        return Output([(f"{len(texts)} fooling images", sheet)],
                      scores, f"Noise pushed until the model gives each class at least {result.threshold:.1%}.")

    handle = ctx.handle(model)
    return [Card(ATTACKS.slug, slug(f"fooling-{model}"), f"fooling images for {model}", "fool",
                 {"model": model, "classes": [class_name(handle, c) for c in classes], "steps": ctx.sizes.fooling_steps,
                  "start": "noise", "seed": 0}, compute, "Fooling images")]


def style_cards(ctx: Context, model: str) -> list[Card]:
    """Style transfer of a photo with the model's features (colour models only)."""
    if ctx.handle(model).in_channels != 3:
        return []
    content, style = "chelsea", "immunohistochemistry"
    side = ctx.sizes.style_size

    def compute() -> Output:
        from cnnviz.interpret.optimize import style_transfer

        handle = ctx.handle(model)
        content_image = zoo.load_image(content)
        style_image = zoo.load_image(style)
        result = style_transfer(handle, content_image[None].to(handle.device), style=style_image.to(handle.device),
                                size=side, steps=ctx.sizes.style_steps, progress=ctx.settings.progress)
        panel = style_panel(content_image, style_image, result.images[0], ["content", "style", "result"], side=side)
        return Output([("content | style | result", panel)], {},
                      "The content's layout painted with the style's textures (Gram matrices of softmax-smoothed "
                      "features).")

    return [Card(ATTACKS.slug, slug(f"style-{model}"), f"style transfer with {model}", "style",
                 {"model": model, "content": content, "style": style, "steps": ctx.sizes.style_steps,
                  "size": side}, compute, "Style transfer")]
