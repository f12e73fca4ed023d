"""The words a picture prints beside a channel that a network dissection labelled: its concept with the IoU, so
that a weak label reads weak."""

from __future__ import annotations

from typing import Any

Label = Any  # a dissection's unit (:class:`~interpret.inside.UnitLabel`): ``concept``, ``iou``, ``detector``


def label_words(label: Label | None) -> str:
    """A unit's dissection label with its IoU beside it, so that a weak label reads weak (below the dissection's
    detector IoU it is marked as a guess).

    Example:
        >>> from cnnviz.interpret.inside import UnitLabel
        >>> label_words(UnitLabel(3, "Sneaker", 0.21, True))
        'Sneaker (IoU 0.21)'
        >>> label_words(UnitLabel(4, "Bag", 0.012, False))
        'weak: Bag? (IoU 0.012)'
    """
    if label is None or getattr(label, "concept", None) is None:
        return ""
    iou = float(label.iou)
    return f"{label.concept} (IoU {iou:.2g})" if label.detector else f"weak: {label.concept}? (IoU {iou:.2g})"
