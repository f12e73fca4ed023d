"""Predictions over a data set: accuracy per class, the confusion matrix, calibration (reliability bins and the
expected calibration error), the most confident mistakes and the least confident correct predictions.

Everything is computed from one row per item (true class, predicted class, confidence = the top softmax
probability), which the audit streams to disk chunk by chunk; the confusion matrix is scikit-learn's
``confusion_matrix`` and the reliability bins scikit-learn's ``calibration_curve`` (top-label calibration: is the
prediction right, against its confidence). ECE is the bins' ``count / N * |accuracy - confidence|`` summed (Guo et
al. 2017, 15 equal-width bins by default).

Example:
    >>> import numpy as np
    >>> found = summarize(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([0.9, 0.8, 0.6, 0.3]),
    ...                   ["cat", "dog"], ids=[0, 1, 2, 3], bins=2)
    >>> found["overall"]["accuracy"], found["confusion"]["matrix"], round(found["calibration"]["ece"], 3)
    (0.75, [[1, 1], [0, 2]], 0.25)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix

BINS = 15  # reliability bins (Guo et al. 2017)
EXAMPLES = 50  # mistakes and unsure correct predictions listed


def reliability(correct: np.ndarray, confidence: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Equal-width confidence bins over [0, 1]: each bin's ``lo``, ``hi``, ``count``, mean ``confidence`` and
    ``accuracy`` (None for an empty bin), the bins as scikit-learn's ``calibration_curve`` draws them.

    Example:
        >>> [b["count"] for b in reliability(np.array([1, 0, 1]), np.array([0.2, 0.7, 0.9]), bins=2)]
        [1, 2]
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    # calibration_curve's own binning (searchsorted on the inner edges), for the counts it does not return
    index = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(index, minlength=bins)
    accuracy = confidences = np.array([])
    if len(correct):
        accuracy, confidences = calibration_curve(correct.astype(int), confidence, n_bins=bins, pos_label=1)
    filled = iter(zip(accuracy.tolist(), confidences.tolist()))
    out = []
    for b in range(bins):
        acc, conf = next(filled) if counts[b] else (None, None)
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(counts[b]), "confidence": conf,
                    "accuracy": acc})
    return out


def expected_calibration_error(bins: Sequence[dict[str, Any]]) -> float:
    """ECE: the reliability bins' gaps between accuracy and confidence, weighted by their share of the items.

    Example:
        >>> expected_calibration_error([{"count": 1, "accuracy": 1.0, "confidence": 0.5},
        ...                             {"count": 3, "accuracy": 0.0, "confidence": 0.2}])
        0.275
    """
    total = sum(b["count"] for b in bins)
    if not total:
        return 0.0
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def ranked(rows: np.ndarray, confidence: np.ndarray, *, highest: bool, count: int) -> np.ndarray:
    """``count`` of ``rows`` by confidence (highest or lowest first), ties by row, so the order is the same
    however the items were batched.

    Example:
        >>> ranked(np.array([0, 1, 2]), np.array([0.5, 0.9, 0.5]), highest=True, count=2).tolist()
        [1, 0]
    """
    key = -confidence[rows] if highest else confidence[rows]
    return rows[np.lexsort((rows, key))][:count]


def summarize(labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, classes: Sequence[str], *,
              ids: Sequence[Any], bins: int = BINS, examples: int = EXAMPLES) -> dict[str, Any]:
    """The prediction parts of ``audit.json`` from one row per item.

    Args:
        labels: ``(N,)`` true class indices (of ``classes``).
        predicted: ``(N,)`` predicted class indices.
        confidence: ``(N,)`` the predicted class's probability.
        classes: the model's class names.
        ids: each item's id.
        bins: reliability bins.
        examples: items listed as mistakes and as unsure correct predictions.

    Returns:
        ``overall``, ``confusion`` (over the classes that are true or predicted for some item, in the model's
        order), ``calibration``, ``mistakes``, ``unsure_correct`` and ``per_class`` (index -> items, accuracy).
    """
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = labels == predicted
    shown = sorted(set(labels.tolist()) | set(predicted.tolist()))
    matrix = confusion_matrix(labels, predicted, labels=shown)
    calibration = reliability(correct, confidence, bins)
    rows = np.arange(len(labels))

    def listed(chosen: np.ndarray) -> list[dict[str, Any]]:
        return [{"item": ids[r], "label": classes[labels[r]], "predicted": classes[predicted[r]],
                 "confidence": float(confidence[r])} for r in chosen]

    per_class = {int(k): {"items": int((labels == k).sum()), "accuracy": float(correct[labels == k].mean())}
                 for k in sorted(set(labels.tolist()))}
    return {
        "overall": {"accuracy": float(correct.mean()) if len(correct) else 0.0,
                    "ece": expected_calibration_error(calibration), "items": int(len(labels))},
        "confusion": {"labels": [classes[k] for k in shown], "matrix": matrix.tolist()},
        "calibration": {"bins": calibration, "ece": expected_calibration_error(calibration)},
        "mistakes": listed(ranked(rows[~correct], confidence, highest=True, count=examples)),
        "unsure_correct": listed(ranked(rows[correct], confidence, highest=False, count=examples)),
        "per_class": per_class,
    }
