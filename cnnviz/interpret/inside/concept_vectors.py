"""TCAV (Kim et al. 2018): does a human concept, given as example images, push a class up?

A concept activation vector (CAV) is the normal of a linear classifier that separates a layer's activations on the
concept's images from those on random images. A class's TCAV score is the fraction of its images whose class logit
rises along the CAV (a positive directional derivative). One random set can make any concept look meaningful, so,
as in the paper, the score is computed against ``runs`` different random counter-concepts, the same is done for a
random set posing as the concept, and a two-sided t-test between the two lists of scores gives the p-value.

The CAVs and scores come from captum's TCAV (its default SGD classifier, its files in a temporary folder that is
removed afterwards); the random sets, the test and every generator's state are handled here.

Example:
    >>> import torch
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> noise = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    >>> striped = torch.zeros(12, 1, 28, 28); striped[:, :, ::4] = 1
    >>> found = tcav(handle, {"striped": striped}, noise[:8], "Shirt", layer="features.block2",
    ...              randoms=noise[8:], runs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from scipy import stats

from cnnviz.interpret.core.random_state import numpy_and_python_rng
from cnnviz.interpret.core.targets import class_index
from cnnviz.zoo.core import CnnvizError, preserve
from cnnviz.zoo.handle import ModelHandle

MIN_IMAGES = 10  # per concept and per random set: fewer leave the linear classifier nothing to learn from


@dataclass(frozen=True)
class ConceptScore:
    """One concept's TCAV result for one class at one layer.

    Attributes:
        concept: the concept's name.
        layer: the layer's dotted name.
        target: the class index; ``target_name`` its name.
        score: mean TCAV score over the runs (fraction of class images pushed up by the concept).
        scores: the score against each random counter-concept.
        random_scores: the scores of a random set posing as the concept (the null distribution).
        p_value: two-sided t-test of ``scores`` against ``random_scores``.
        significant: ``p_value < alpha``.
    """

    concept: str
    layer: str
    target: int
    target_name: str
    score: float
    scores: tuple[float, ...]
    random_scores: tuple[float, ...]
    p_value: float
    significant: bool


def random_sets(randoms: torch.Tensor, runs: int, size: int, seed: int) -> list[torch.Tensor]:
    """``runs + 1`` random sets of ``size`` images drawn from ``randoms`` (set 0 poses as a concept in the null)."""
    if randoms.shape[0] < size:
        raise CnnvizError(f"{randoms.shape[0]} random images for concepts of {size}: give at least as many random "
                          "images as the largest concept has")
    generator = torch.Generator().manual_seed(seed)
    return [randoms[torch.randperm(randoms.shape[0], generator=generator)[:size]] for _ in range(runs + 1)]


def check_concepts(concepts: Mapping[str, torch.Tensor]) -> None:
    """One line for a concept with too few images."""
    if not concepts:
        raise CnnvizError("no concepts given: give at least one, as NAME=FOLDER of example images")
    for name, images in concepts.items():
        if images.shape[0] < MIN_IMAGES:
            raise CnnvizError(f"concept {name!r} has {images.shape[0]} images: give at least {MIN_IMAGES}")


def tcav(handle: ModelHandle, concepts: Mapping[str, torch.Tensor], images: torch.Tensor, target: int | str, *,
         layer: str, randoms: torch.Tensor, runs: int = 10, alpha: float = 0.05,
         seed: int = 0) -> list[ConceptScore]:
    """TCAV scores of ``concepts`` for class ``target`` on ``images``, each with the paper's two-sided test.

    Args:
        handle: the model (left as it was; every random generator too).
        concepts: name -> ``(N, C, H, W)`` example images in [0, 1] (at least :data:`MIN_IMAGES`).
        images: ``(B, C, H, W)`` images of the class to explain.
        target: the class, index or name.
        layer: the layer whose activations the CAVs live in.
        randoms: a pool of random images; ``runs + 1`` counter-concepts are drawn from it.
        runs: random counter-concepts per concept (the paper uses up to 500; 10 shows the effect).
        alpha: significance level of the t-test.
        seed: seed of the random sets and of captum's classifier.

    Returns:
        One :class:`ConceptScore` per concept, in the order given.
    """
    from captum.concept import TCAV, Concept

    check_concepts(concepts)
    if runs < 2:
        raise CnnvizError(f"runs must be at least 2 for a t-test, got {runs}")
    index = class_index(handle, target)
    handle.layer(layer)
    size = max(c.shape[0] for c in concepts.values())
    pool = random_sets(randoms.to(handle.device), runs, size, seed)
    as_concept = [Concept(i, f"random{i}", [r]) for i, r in enumerate(pool)]
    named = [Concept(len(pool) + i, name, [c.to(handle.device)]) for i, (name, c) in enumerate(concepts.items())]
    null = [[as_concept[0], r] for r in as_concept[1:]]
    experiments = [[c, r] for c in named for r in as_concept[1:]] + null
    devices = [handle.device] if handle.device.type == "cuda" else []
    with tempfile.TemporaryDirectory(prefix="cnnviz-tcav-") as folder, preserve(handle), \
            torch.random.fork_rng(devices=devices), numpy_and_python_rng(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns about its in-memory classifier and its file cache
        torch.manual_seed(seed)
        tcav_run = TCAV(handle, layers=[f"model.{layer}"], save_path=folder)
        found = tcav_run.interpret(images.to(handle.device), experiments, target=index)
    key = f"model.{layer}"

    def score(pair: list[Concept]) -> float:
        return float(found[f"{pair[0].id}-{pair[1].id}"][key]["sign_count"][0])

    null_scores = tuple(score(pair) for pair in null)
    results = []
    for c in named:
        scores = tuple(score([c, r]) for r in as_concept[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when the scores are (nearly) constant
            p_value = float(stats.ttest_ind(scores, null_scores).pvalue)
        if p_value != p_value:  # both lists constant and equal: no evidence either way
            p_value = 1.0
        results.append(ConceptScore(c.name, layer, index, handle.class_name(index), sum(scores) / len(scores),
                                    scores, null_scores, p_value, p_value < alpha))
    return results
