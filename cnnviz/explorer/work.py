"""The torch work behind each request, run on the device's compute queue: predict, explain, a layer's feature
maps, one unit's activation, and the channels that carry a class's evidence. Everything here calls interpret's
public functions; the results are plain numbers and arrays, drawn later by :mod:`explorer.drawing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnviz import interpret
from cnnviz.interpret import Method
from cnnviz.interpret.evaluate import deletion_insertion, random_band
from cnnviz.interpret.inside import unit_evidence
from cnnviz.interpret.views import explained_overlay
from cnnviz.zoo import unpack_detections
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.core import dumps


def probabilities(handle: ModelHandle, batch: torch.Tensor) -> torch.Tensor:
    """Class probabilities of one prepared image ``(1, C, H, W)``; for a segmentation model each class's share
    of the pixels, for a detector the best score each class is detected with."""
    with torch.no_grad():
        output = handle(batch)
    if handle.config.task == "segmentation":
        labels = output[0].argmax(0).flatten()
        return torch.bincount(labels, minlength=output.shape[1]).float().cpu() / labels.numel()
    if handle.config.task == "detection":
        rows = unpack_detections(output)[0].float().cpu()
        best = torch.zeros(handle.config.num_classes or (int(rows[:, 5].max()) + 1 if len(rows) else 1))
        return best.scatter_reduce(0, rows[:, 5].long(), rows[:, 4], reduce="amax")
    return output.softmax(-1)[0].float().cpu()


def top_classes(handle: ModelHandle, probs: torch.Tensor, k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes, most probable first."""
    values, indices = probs.topk(min(k, probs.numel()))
    return [{"index": int(i), "name": handle.class_name(int(i)), "probability": float(v)}
            for v, i in zip(values, indices)]


@dataclass
class Explanation:
    """A map with what it needs to be drawn and downloaded."""

    image: np.ndarray  # the prepared image (C, H, W) in [0, 1]
    raw: np.ndarray  # the method's map of this image, as the method returned it
    flat: np.ndarray  # the (H, W) map drawn
    record: dict[str, Any]  # what cnnviz explain writes beside the PNG
    title: str
    marked: np.ndarray | None = None  # a dense model's image with the explained region or boxes drawn
    target: Any = None  # a dense model's target (a region or box score), for faithfulness

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + self.raw.nbytes + self.flat.nbytes + 4096 + \
            (self.marked.nbytes if self.marked is not None else 0)


def explain(handle: ModelHandle, method: Method, batch: torch.Tensor, probs: torch.Tensor, image_name: str,
            target: int | None, layer: str | None, options: dict[str, Any], stem: str) -> Explanation:
    """Run ``method`` on one prepared image as ``cnnviz explain`` does (:func:`interpret.explain_one`), with its
    record (``probs``: the model's probabilities on the image; ``stem``: the files' name, cleaned as
    ``cnnviz explain`` cleans it)."""
    found = interpret.explain_one(handle, method, batch, target, names=[image_name], files=[stem], layer=layer,
                                  options=options, probs=probs[None])
    return _shown(found)


def explain_dense(handle: ModelHandle, method: Method, batch: torch.Tensor, image_name: str, target: int | None,
                  region: tuple[float, ...] | None, box: int | None, layer: str | None, options: dict[str, Any],
                  stem: str) -> Explanation:
    """Run ``method`` on a segmentation model or a detector as ``cnnviz explain --region/--box`` does: the
    explained region or box is drawn on the image (its detections too), and the record says what was explained."""
    found = interpret.explain_one(handle, method, batch, target, names=[image_name], files=[stem], layer=layer,
                                  options=options, region=region, box=box)
    explained = found.targets[0]
    return _shown(found, explained_overlay(batch[0].cpu(), explained, found.detections[0], handle.class_name),
                  explained)


def _shown(found: interpret.Explanation, marked: np.ndarray | None = None, target: Any = None) -> Explanation:
    return Explanation(found.images[0].cpu().numpy(), found.maps[0].detach().cpu().numpy(),
                       found.flat[0].detach().cpu().numpy(), found.records[0], found.titles[0], marked, target)


def record_json(found: Explanation) -> bytes:
    """The record as its download serves it: the bytes ``cnnviz explain`` writes beside the PNG."""
    return dumps(found.record).encode("utf-8")


def layer_maps(handle: ModelHandle, batch: torch.Tensor, layer: str, top: int) -> tuple[np.ndarray, list[int]]:
    """The ``top`` strongest channels' feature maps ``(top, h, w)`` and their channel numbers."""
    maps = interpret.feature_maps(handle, batch, layer=layer)[0]
    order = interpret.channel_order(maps[None])[0][:top].tolist()
    return maps[order].cpu().numpy(), order


def unit_activation(handle: ModelHandle, batch: torch.Tensor, layer: str, channel: int) -> np.ndarray:
    """Channel ``channel`` of ``layer`` on the image: an ``(h, w)`` map."""
    maps = interpret.feature_maps(handle, batch, layer=layer)[0]
    if not 0 <= channel < maps.shape[0]:
        raise CnnvizError(f"layer {layer!r} has channels 0 to {maps.shape[0] - 1}, not {channel}")
    return maps[channel].cpu().numpy()


def evidence(handle: ModelHandle, batch: torch.Tensor, target: int | None, layer: str,
             top: int) -> list[tuple[int, float, np.ndarray]]:
    """The ``top`` channels with the most evidence for the class: (channel, summed evidence, evidence map)."""
    maps = unit_evidence(handle, batch, target, layer=layer)[0]
    totals = maps.sum(dim=(1, 2))
    order = totals.argsort(descending=True)[:top].tolist()
    return [(channel, float(totals[channel]), maps[channel].cpu().numpy()) for channel in order]


def unit_filter(handle: ModelHandle, layer: str, channel: int) -> np.ndarray | None:
    """Channel ``channel``'s filter ``(C, kh, kw)`` in [0, 1] when ``layer`` is a conv reading the image's pixels
    (the only filters that read as pictures); else None."""
    convs = dict(interpret.conv_layers(handle))
    if layer not in convs or convs[layer].weight.shape[1] != handle.in_channels:
        return None
    return interpret.filters(handle, layer, mode="rgb")[channel].cpu().numpy()


def faithfulness(handle: ModelHandle, found: Explanation, steps: int) -> dict[str, Any]:
    """Insertion and deletion (onto a blurred copy, as the gallery and ``cnnviz evaluate`` show them) curves of an
    explanation's map on its image, for the class it explains, each read against the band of 8 random maps."""
    image = torch.from_numpy(found.image)[None].to(handle.device)
    target = found.target if found.target is not None else found.record["target"]["index"]
    curves = deletion_insertion(handle, image, torch.from_numpy(found.raw)[None].to(handle.device), target,
                                steps=steps, deletion_to="blur")
    band = random_band(handle, image, target, draws=8, steps=steps, deletion_to="blur")
    area = lambda values: None if values.isnan().any() else float(values[0])
    random = {}
    for metric, auc in (("insertion", curves.insertion_auc), ("deletion", curves.deletion_auc)):
        mean, low, high = (float(v[0]) for v in band.interval(metric))
        random[metric] = {"mean": mean, "low": low, "high": high, "beaten": bool(band.beats(metric, auc)[0])}
    return {"steps": steps, "fractions": curves.fractions.tolist(), "deletion_to": "blur",
            "deletion": curves.deletion[0].tolist(), "insertion": curves.insertion[0].tolist(),
            "deletion_auc": area(curves.deletion_auc), "insertion_auc": area(curves.insertion_auc),
            "random": random, "undefined": curves.undefined[0]}
