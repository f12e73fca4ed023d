"""Statistics and map similarity against scipy and scikit-image, on tied, constant and random data."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import bootstrap, pearsonr, rankdata, spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from cnnviz.interpret.evaluate.similarity import similarity
from cnnviz.interpret.evaluate.statistics import average_ranks, bootstrap_interval, spearman, summarize
from cnnviz.zoo.core import CnnvizError


def scipy_spearman(a: np.ndarray, b: np.ndarray) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on a constant row, then returns NaN
        return [float(spearmanr(x, y).statistic) for x, y in zip(a, b)]


def test_spearman_equals_scipy_on_random_tied_and_constant_rows():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 400)), rng.normal(size=(6, 400))
    b[0] = 2 * a[0] + 0.01 * b[0]  # strongly related
    a[1], b[1] = np.round(a[1]), np.round(b[1] + a[1])  # heavy ties in both
    a[2] = np.where(rng.random(400) < 0.7, 0.0, a[2])  # 70 % zeros, like a ReLU'd map...
    b[2] = np.where(rng.random(400) < 0.7, 0.0, b[2])  # ...and an independent one
    a[3] = 1.5  # constant
    b[4] = 0.0  # constant on the other side
    ours = spearman(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(ours, scipy_spearman(a, b), rtol=1e-10, atol=1e-12, equal_nan=True)
    assert np.isnan(ours[3]) and np.isnan(ours[4]) and abs(ours[2]) < 0.1  # ties are not correlation


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=2, max_size=30))
def test_average_ranks_equal_scipy_rankdata(values):
    ours = average_ranks(torch.tensor([values], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(ours, rankdata(values))


def test_bootstrap_interval_agrees_with_scipy_and_covers_the_mean():
    values = torch.tensor(np.random.default_rng(1).normal(0.3, 1.0, size=40))
    low, high = bootstrap_interval(values, resamples=4000, seed=2)
    reference = bootstrap((values.numpy(),), np.mean, method="percentile", n_resamples=4000,
                          random_state=np.random.default_rng(3)).confidence_interval
    width = reference.high - reference.low
    assert abs(low - reference.low) < 0.1 * width and abs(high - reference.high) < 0.1 * width
    assert low < float(values.mean()) < high
    assert bootstrap_interval(values, resamples=500, seed=2) == bootstrap_interval(values, resamples=500, seed=2)


def test_summary_leaves_undefined_scores_out_and_counts_them():
    summary = summarize(torch.tensor([0.2, math.nan, 0.4, 0.6]))
    assert (summary.count, summary.undefined) == (3, 1)
    assert summary.mean == pytest.approx(0.4) and summary.std == pytest.approx(0.2)
    assert summary.low <= summary.mean <= summary.high
    assert math.isnan(summarize(torch.tensor([math.nan])).mean)


@pytest.mark.parametrize("bad", [{"level": 1.0}, {"resamples": 10}])
def test_bootstrap_options_are_checked(bad):
    with pytest.raises(CnnvizError):
        bootstrap_interval(torch.rand(5), **bad)


def unit(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("absolute", [False, True])
def test_ssim_and_hog_equal_scikit_image(absolute):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 40, 48))
    b = a + rng.normal(scale=0.8, size=a.shape)
    ours_ssim = similarity(torch.tensor(a), torch.tensor(b), "ssim", absolute=absolute).numpy()
    ours_hog = similarity(torch.tensor(a), torch.tensor(b), "hog", absolute=absolute).numpy()
    x, y = (np.abs(a), np.abs(b)) if absolute else (a, b)
    ssim = [structural_similarity(unit(p), unit(q), data_range=1.0) for p, q in zip(x, y)]
    hogs = [pearsonr(hog(unit(p)), hog(unit(q))).statistic for p, q in zip(x, y)]
    np.testing.assert_allclose(ours_ssim, ssim, rtol=1e-9)
    np.testing.assert_allclose(ours_hog, hogs, rtol=1e-9)


@pytest.mark.parametrize("measure", ["spearman", "ssim", "hog"])
def test_a_constant_map_has_no_similarity(measure):
    a, b = torch.rand(2, 32, 32), torch.rand(2, 32, 32)
    b[1] = 0.0
    values = similarity(a, b, measure)
    assert values[0].isfinite() and values[1].isnan()
    assert similarity(a, a, measure)[0] == pytest.approx(1.0)
