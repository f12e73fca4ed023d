"""Fooling images: every requested class reaches the threshold, the reported numbers are the images' own."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz import zoo
from cnnviz.cli.main import main
from cnnviz.interpret.attack.fooling import fool, parse_classes
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


def probabilities(handle, result):
    with torch.no_grad():
        return handle(result.images).softmax(-1)


@pytest.mark.parametrize("start", ["noise", "blank"])
def test_all_fashion_classes_reach_the_threshold(fashion, start):
    result = fool(fashion, "all", start=start, progress=False)
    assert result.classes.tolist() == list(range(10))
    assert result.reached.all() and (result.confidence >= 0.996).all()
    assert (result.steps >= 0).all() and (result.steps < 200).all()
    # the reported confidence is the returned image's, measured again here
    probs = probabilities(fashion, result)
    assert torch.allclose(probs[torch.arange(10), result.classes], result.confidence, atol=1e-5)
    assert result.images.min() >= 0 and result.images.max() <= 1 and result.images.shape == (10, 1, 28, 28)


def test_chunks_give_the_same_classes_and_all_pass(fashion):
    result = fool(fashion, ["Bag", 0, "3-5"], batch_size=2, progress=False)
    assert result.classes.tolist() == [8, 0, 3, 4, 5]
    assert (probabilities(fashion, result).argmax(-1) == result.classes).all() and result.reached.all()


def test_steps_count_the_updates(fashion):
    """An image reported at k steps is the one after k updates: a run of exactly k steps ends on it,
    a run of k - 1 steps does not reach the threshold."""
    first = fool(fashion, ["Sneaker"], progress=False)
    k = int(first.steps[0])
    exact = fool(fashion, ["Sneaker"], steps=k, progress=False)
    assert k >= 2 and int(exact.steps[0]) == k and bool(exact.reached[0])
    assert torch.equal(exact.images, first.images)
    short = fool(fashion, ["Sneaker"], steps=k - 1, progress=False)
    assert int(short.steps[0]) == -1 and not bool(short.reached[0])


@pytest.mark.slow
def test_lite0_classes_reach_the_threshold(lite0):
    result = fool(lite0, ["goldfish", "espresso", 500], progress=False)
    assert result.reached.all() and (result.steps >= 0).all()
    probs = probabilities(lite0, result)
    assert (probs[torch.arange(3), result.classes] >= 0.996).all()


def test_fooling_leaves_the_model_unchanged(fashion):
    fashion.train()
    try:
        before = state_snapshot(fashion)
        fool(fashion, [1, 2], steps=5, progress=False)
        assert_unchanged(before, fashion)
        with pytest.raises(CnnvizError):
            fool(fashion, [1, 2], start="plaid", progress=False)
        assert_unchanged(before, fashion)
    finally:
        fashion.eval()


def test_parse_classes(fashion, lite0):
    assert parse_classes(fashion, ["Trouser", "7", 9, "0-2"]) == [1, 7, 9, 0, 1, 2]
    assert parse_classes(lite0, "all") == list(range(1000))
    assert parse_classes(lite0, ["tiger cat"]) == [282]


@pytest.mark.parametrize("classes,kwargs,message", [
    (["Trousr"], {}, "did you mean 'Trouser'"),
    ([10], {}, "out of range"),
    (["5-2"], {}, "runs backwards"),
    ([], {}, "no classes given"),
    ([1], {"threshold": 1.5}, "threshold must be a probability"),
    ([1], {"steps": 0}, "steps must be at least 1"),
    ([1], {"lr": 0}, "lr must be positive"),
    ([1], {"start": "plaid"}, "unknown start"),
    ([1], {"optimizer": "rmsprop"}, "unknown optimizer"),
])
def test_bad_fooling_inputs_raise(fashion, classes, kwargs, message):
    with pytest.raises(CnnvizError, match=message):
        fool(fashion, classes, progress=False, **kwargs)


def test_cli_fool_writes_sheet_and_table(capsys, tmp_path):
    code = main(["fool", "--model", "fashion_cnn", "--classes", "all", "--each", "--out", str(tmp_path),
                 "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "10/10 classes reached 99.6%" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["fooling.tsv", "fooling-sheet-01.png", *(f"fool-{i:04d}.png" for i in range(10))])
    rows = (tmp_path / "fooling.tsv").read_text().splitlines()
    assert rows[0] == "class\tname\tconfidence\tsteps" and len(rows) == 11
    assert all(float(row.split("\t")[2]) >= 0.996 for row in rows[1:])
    single = np.asarray(Image.open(tmp_path / "fool-0008.png"))
    assert single.shape[:2] == (28, 28)
    from cnnviz import zoo  # the threshold holds for the 8-bit files the user gets, not only for the float images
    handle = zoo.load("fashion_cnn", device="cpu")
    files = [zoo.load_image(tmp_path / f"fool-{i:04d}.png") for i in range(10)]
    with torch.no_grad():
        saved = handle(handle.prepare(files)).softmax(-1).diagonal()
    assert (saved >= 0.996).all(), saved


@pytest.mark.parametrize("argv,message", [
    (["--classes", "Trousr"], "did you mean 'Trouser'"),
    (["--classes", "1", "--threshold", "2"], "threshold must be a probability"),
    (["--classes", "1", "--start", "plaid"], "invalid choice: 'plaid'"),
    (["--classes", "1", "--batch-size", "0"], "batch_size must be at least 1"),
])
def test_cli_fool_bad_input(capsys, tmp_path, argv, message):
    try:
        code = main(["fool", "--model", "fashion_cnn", "--out", str(tmp_path), "--device", "cpu", *argv])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_refilled_rows_give_each_class_the_result_it_gets_alone(fashion):
    """With refill every class runs from its own seeded noise in whatever row frees up first: its
    image and step count must not depend on the batch size or the classes around it."""
    together = fool(fashion, "all", batch_size=3, progress=False)
    alone = fool(fashion, ["Bag"], progress=False)
    bag = int(alone.classes[0])
    row = int((together.classes == bag).nonzero()[0])
    assert bool(together.reached.all()) and int(together.steps[row]) == int(alone.steps[0])
    torch.testing.assert_close(together.images[row], alone.images[0], atol=1e-5, rtol=0)


def test_refill_and_chunks_reach_the_same_classes(fashion):
    refilled = fool(fashion, "all", batch_size=4, progress=False)
    chunked = fool(fashion, "all", batch_size=4, refill=False, progress=False)
    assert torch.equal(refilled.classes, chunked.classes)
    assert bool(refilled.reached.all()) and bool(chunked.reached.all())


def test_cli_fool_flags_default_to_fools_own_signature():
    import inspect

    from cnnviz.cli.main import build_parser

    args = build_parser().parse_args(["fool", "--classes", "1"])
    for name in ("threshold", "steps", "lr", "decay", "start", "batch_size", "seed"):
        assert getattr(args, name) == inspect.signature(fool).parameters[name].default, name
