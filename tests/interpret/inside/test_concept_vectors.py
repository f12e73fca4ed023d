"""TCAV: the same scores as captum's TCAV on the same concepts and random sets, the paper's two-sided test, every
random generator and the model left as found, one-line refusals; on fashion_cnn a "has sleeves" concept scores for
shirts and coats and not for trousers."""

import random

import numpy as np
import pytest
import torch

from cnnviz import interpret
from cnnviz.interpret.inside.concept_vectors import random_sets
from tests.conftest import FASHION_DIR, assert_unchanged, state_snapshot, needs_fashion
from cnnviz.zoo.core import CnnvizError

SHIRT, TROUSER, PULLOVER, COAT = 6, 1, 2, 4


@pytest.fixture(scope="module")
def splits():
    from cnnviz.zoo.data import read_idx_split

    return read_idx_split(FASHION_DIR, "train"), read_idx_split(FASHION_DIR, "t10k")


def of_classes(data, classes: list[int], count: int) -> torch.Tensor:
    rows = torch.nonzero(torch.isin(data.labels, torch.tensor(classes))).flatten()[:count]
    return data.images[rows].float() / 255


@needs_fashion
def test_tcav_equals_captums_tcav_on_the_same_concepts_and_random_sets(fashion, splits, tmp_path):
    from captum.concept import TCAV, Concept

    train, test = splits
    sleeves, randoms, shirts = of_classes(train, [2, 4, 6], 30), train.images[3000:3200].float() / 255, \
        of_classes(test, [SHIRT], 12)
    layer = "features.block3"
    found = interpret.tcav(fashion, {"sleeves": sleeves}, shirts, "Shirt", layer=layer, randoms=randoms, runs=2,
                           seed=5)[0]
    # captum by hand: the same random sets, ids, seeds and experiments.
    pool = random_sets(randoms, 2, 30, seed=5)
    as_concept = [Concept(i, f"random{i}", [r]) for i, r in enumerate(pool)]
    concept = Concept(3, "sleeves", [sleeves])
    experiments = [[concept, r] for r in as_concept[1:]] + [[as_concept[0], r] for r in as_concept[1:]]
    with torch.random.fork_rng(), pytest.warns(UserWarning):
        torch.manual_seed(5), np.random.seed(5), random.seed(5)
        reference = TCAV(fashion, layers=[f"model.{layer}"], save_path=str(tmp_path)).interpret(
            shirts, experiments, target=SHIRT)
    expected = [float(reference[f"{a.id}-{b.id}"][f"model.{layer}"]["sign_count"][0]) for a, b in experiments]
    assert list(found.scores) + list(found.random_scores) == pytest.approx(expected)
    assert found.score == pytest.approx(sum(expected[:2]) / 2)
    from scipy import stats

    assert found.p_value == pytest.approx(float(stats.ttest_ind(expected[:2], expected[2:]).pvalue), nan_ok=True) \
        or found.p_value == 1.0


def test_tcav_leaves_the_model_and_every_random_generator_as_found(fashion):
    noise = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before = state_snapshot(fashion)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    interpret.tcav(fashion, {"noise": noise[:10]}, noise[10:14], 0, layer="features.block2", randoms=noise[14:],
                   runs=2)
    assert_unchanged(before, fashion)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]


def test_bad_requests_are_one_line(fashion):
    noise = torch.rand(30, 1, 28, 28)
    cases = [({"concepts": {"few": noise[:9]}}, "concept 'few' has 9 images: give at least 10"),
             ({"concepts": {}}, "no concepts given"),
             ({"runs": 1}, "runs must be at least 2"),
             ({"randoms": noise[:5]}, "5 random images for concepts of 10"),
             ({"layer": "features.blok2"}, "features.block2")]
    for change, message in cases:
        options = {"concepts": {"ok": noise[:10]}, "layer": "features.block2", "randoms": noise, "runs": 2} | change
        with pytest.raises(CnnvizError, match=message) as error:
            interpret.tcav(fashion, options.pop("concepts"), noise[:4], 0, **options)
        assert "\n" not in str(error.value)


@pytest.mark.slow  # 4 classes x 21 linear classifiers: about 45 s on a shared 2-core CPU
@needs_fashion
def test_a_has_sleeves_concept_scores_for_shirts_and_coats_and_not_for_trousers(fashion, splits):
    train, test = splits
    sleeves = of_classes(train, [PULLOVER, COAT, SHIRT], 100)
    randoms = train.images[3000:4000].float() / 255  # all ten classes, as the paper's random images
    found = {c: interpret.tcav(fashion, {"sleeves": sleeves}, of_classes(test, [c], 50), c,
                               layer="classifier.act1", randoms=randoms, runs=10)[0]
             for c in (SHIRT, COAT, PULLOVER, TROUSER)}
    for c in (SHIRT, COAT, PULLOVER, TROUSER):
        print(fashion.class_name(c), found[c].score, sum(found[c].random_scores) / 10, found[c].p_value)
    for c in (SHIRT, COAT):
        null = sum(found[c].random_scores) / len(found[c].random_scores)
        assert found[c].significant and found[c].score > null, fashion.class_name(c)
    assert found[PULLOVER].score > sum(found[PULLOVER].random_scores) / 10  # p = 0.065 with 10 runs
    trouser = found[TROUSER]
    assert trouser.score < sum(trouser.random_scores) / len(trouser.random_scores)  # if significant, then against


@needs_fashion
def test_the_cli_prints_each_score_with_its_p_value_and_refuses_a_small_folder(fashion, splits, tmp_path, capsys):
    from PIL import Image

    from cnnviz.cli.main import main

    train, test = splits

    def folder(name, images):
        (tmp_path / name).mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image[0].numpy()).save(tmp_path / name / f"{i:03d}.png")
        return str(tmp_path / name)

    rows = torch.nonzero(torch.isin(train.labels, torch.tensor([2, 4, 6]))).flatten()
    sleeves = folder("sleeves", train.images[rows[:12]])
    few = folder("few", train.images[rows[:9]])
    randoms = folder("random", train.images[3000:3040])
    shirts = folder("shirts", test.images[test.labels == SHIRT][:6])
    common = ["tcav", "--model", "fashion_cnn", "--random", randoms, "--image", shirts, "--target", "Shirt",
              "--layer", "classifier.act1", "--runs", "2"]
    assert main([*common, "--concept", f"sleeves={sleeves}"]) == 0
    out = capsys.readouterr().out
    assert "sleeves" in out and "Shirt at classifier.act1: TCAV" in out and "p = " in out
    assert main([*common, "--concept", f"few={few}"]) == 2
    assert "concept 'few' has 9 images: give at least 10" in capsys.readouterr().err
