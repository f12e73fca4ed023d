"""The prediction summary against hand-computed values on a tiny case."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.interpret.audit import summarize

LABELS = np.array([0, 0, 1, 1, 2])
PREDICTED = np.array([0, 1, 1, 1, 0])
CONFIDENCE = np.array([0.95, 0.9, 0.55, 0.65, 0.3])
IDS = ["a/0.png", "a/1.png", "b/2.png", "b/3.png", "c/4.png"]


@pytest.fixture(scope="module")
def found():
    return summarize(LABELS, PREDICTED, CONFIDENCE, ["a", "b", "c"], ids=IDS, bins=5, examples=10)


def test_confusion_matrix_rows_true_columns_predicted(found):
    assert found["confusion"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]]}
    assert found["per_class"] == {0: {"items": 2, "accuracy": 0.5}, 1: {"items": 2, "accuracy": 1.0},
                                  2: {"items": 1, "accuracy": 0.0}}
    assert found["overall"]["accuracy"] == pytest.approx(0.6)


def test_reliability_bins_and_ece_by_hand(found):
    bins = found["calibration"]["bins"]
    assert [b["count"] for b in bins] == [0, 1, 1, 1, 2]
    assert bins[0]["accuracy"] is None and bins[0]["confidence"] is None
    assert [b["accuracy"] for b in bins[1:]] == pytest.approx([0.0, 1.0, 1.0, 0.5])
    assert [b["confidence"] for b in bins[1:]] == pytest.approx([0.3, 0.55, 0.65, 0.925])
    # 1/5 |0 - 0.3| + 1/5 |1 - 0.55| + 1/5 |1 - 0.65| + 2/5 |0.5 - 0.925|
    assert found["calibration"]["ece"] == pytest.approx(0.06 + 0.09 + 0.07 + 0.17)
    assert found["overall"]["ece"] == found["calibration"]["ece"]


def test_mistakes_most_confident_first_and_unsure_correct_least_first(found):
    assert [m["item"] for m in found["mistakes"]] == ["a/1.png", "c/4.png"]
    assert found["mistakes"][0] == {"item": "a/1.png", "label": "a", "predicted": "b", "confidence": 0.9}
    assert [m["item"] for m in found["unsure_correct"]] == ["b/2.png", "b/3.png", "a/0.png"]


def test_confusion_lists_a_class_only_predicted():
    found = summarize(np.array([0, 1]), np.array([3, 1]), np.array([0.5, 0.5]), list("abcd"), ids=[0, 1])
    assert found["confusion"] == {"labels": ["a", "b", "d"], "matrix": [[0, 0, 1], [0, 1, 0], [0, 0, 0]]}
