"""``cnnviz tcav``: does a concept, given as a folder of example images, push a class up (Kim et al. 2018)?"""

from __future__ import annotations

import argparse
import typing

import torch

from cnnviz import zoo
from cnnviz.cli.options import add_images, add_model, checked, chosen_layer, load_batch, load_handle
from cnnviz.cli.registry import Run, command
from cnnviz.interpret.inside import MIN_IMAGES, tcav
from cnnviz.zoo.core import AtLeast, CnnvizError, OpenUnitInterval
from cnnviz.zoo.handle import ModelHandle

Runs = typing.Annotated[int, AtLeast(2)]  # a t-test needs two scores per side


def _folder_images(handle: ModelHandle, source: str) -> torch.Tensor:
    """Every image in folder ``source``, prepared for the model."""
    return handle.prepare([image for _, image in zoo.load_images([source], channels=handle.in_channels)])


def _concepts(text: list[str]) -> dict[str, str]:
    concepts: dict[str, str] = {}
    for item in text:
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise CnnvizError(f"--concept takes NAME=FOLDER, got {item!r}")
        concepts[name.strip()] = folder.strip()
    return concepts


@command("tcav", "test whether concepts (folders of example images) push a class up: TCAV scores and p-values",
         order=36,
         description="TCAV (Kim et al. 2018): a concept activation vector separates a layer's activations on the\n"
                     "concept's images from those on random images; a class's score is the fraction of its images\n"
                     "(--image) whose logit rises along it. Each concept is scored against --runs random\n"
                     "counter-concepts drawn from --random, and a random set posing as a concept gives the null:\n"
                     "a two-sided t-test between the two gives the p-value. Prints one line per concept.\n"
                     f"Each concept folder needs at least {MIN_IMAGES} images.\n\n"
                     "examples:\n"
                     "  cnnviz tcav --concept striped=striped/ --random random/ --image zebras/ --target zebra "
                     "--layer blocks.12\n"
                     "  cnnviz tcav --model fashion_cnn --concept sleeves=sleeves/ --random random/ --image shirts/ "
                     "--target Shirt --layer classifier.act1")
def tcav_command(parser: argparse.ArgumentParser) -> Run:
    add_images(parser)
    add_model(parser)
    parser.add_argument("--concept", "-c", nargs="+", action="extend", required=True, metavar="NAME=DIR",
                        help="a concept and the folder of its example images; repeat for several")
    parser.add_argument("--random", "-r", required=True, metavar="DIR",
                        help="folder of random images the counter-concepts are drawn from")
    parser.add_argument("--target", "-t", required=True, metavar="CLASS", help="the class the --image show")
    parser.add_argument("--layer", "-l", metavar="NAME", help="layer of the concept vectors (default: the model's)")
    parser.add_argument("--runs", type=checked(Runs, "--runs"), default=10, metavar="N",
                        help="random counter-concepts per concept (default: 10)")
    parser.add_argument("--alpha", type=checked(OpenUnitInterval, "--alpha"), default=0.05,
                        help="significance level (default: 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sets and classifiers (default: 0)")

    def run(args: argparse.Namespace) -> None:
        concepts = _concepts(args.concept)
        handle = load_handle(args)
        layer = chosen_layer(args, handle)
        _, images = load_batch(args, handle)
        examples = {name: _folder_images(handle, folder) for name, folder in concepts.items()}
        randoms = _folder_images(handle, args.random)
        for found in tcav(handle, examples, images, args.target, layer=layer, randoms=randoms, runs=args.runs,
                          alpha=args.alpha, seed=args.seed):
            null = sum(found.random_scores) / len(found.random_scores)
            verdict = "significant" if found.significant else "not significant"
            print(f"{found.concept:<20} {found.target_name} at {layer}: TCAV {found.score:.3f} "
                  f"(random {null:.3f}), p = {found.p_value:.3g}, {verdict} at {args.alpha:g}")

    return run
