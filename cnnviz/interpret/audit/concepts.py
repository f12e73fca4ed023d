"""A class's concepts, CRAFT's first step (Fel et al. 2023): an NMF of a layer's activations, ranked by importance.

- **Concepts.** The layer's non-negative activations on the class's images,
  one row per position and image, one column per channel ``(N*h*w, C)``, are
  factored by scikit-learn's NMF into ``W`` ``(N*h*w, k)`` and ``H`` ``(k, C)``:
  concept ``i`` is the channel pattern ``H[i]`` and its map on each image is
  ``W[:, i]`` reshaped to ``(N, h, w)``.
- **Importance.** Concept ``i``'s reconstruction ``W[:, i] H[i]`` is removed
  from the layer's output through a forward hook, and the drop of the class
  score (the logit), averaged over the images, is its importance.
- **Crops.** The images where the concept's map peaks highest, each with a box
  (fractions of the image) of the peak cell and its neighbours (a 3x3-cell
  window of the layer's grid: an approximate footprint, not the receptive field).

The model is left as found (``zoo.preserve``, the hook only inside
``forward_hooks``) and the global RNGs are not used (NMF has its own seed).

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> images = torch.rand(6, 1, 28, 28)
    >>> found = class_concepts(handle, images, 0, "features.block2.act", list(range(6)), concepts=3)
    >>> len(found), found[0].maps.shape
    (3, (6, 14, 14))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.interpret.core import layer_output
from cnnviz.zoo.core import CnnvizError, forward_hooks, preserve
from cnnviz.zoo.handle import as_handle

CONCEPTS = 5
CROPS = 6
BATCH = 64
NMF_SETTINGS: dict[str, Any] = {"init": "nndsvda", "max_iter": 200, "tol": 1e-4}  # scikit-learn's NMF, with seed


@dataclass
class Concept:
    """One concept of a class.

    Attributes:
        id: its rank by importance (0: the most important).
        vector: ``(C,)`` the concept's channel pattern (a row of NMF's ``H``).
        maps: ``(N, h, w)`` its coefficient at each position of each image (NMF's ``W``).
        importance: the mean drop of the class score when the concept is removed from the layer.
        crops: the top images: ``{"item", "box": [x0, y0, x1, y1] fractions, "value"}``, highest first.
        ids: the item ids of the N images, in order.
    """

    id: int
    vector: np.ndarray
    maps: np.ndarray
    importance: float
    crops: list[dict[str, Any]] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)

    def to_json(self, *, maps: bool = False) -> dict[str, Any]:
        """JSON-ready data; the per-image maps (large) only when ``maps`` is true."""
        data: dict[str, Any] = {"id": self.id, "importance": round(self.importance, 6),
                                "vector": np.round(self.vector.astype(float), 6).tolist(), "crops": self.crops}
        if maps:
            data["maps"] = {"ids": list(self.ids), "values": np.round(self.maps.astype(float), 6).tolist()}
        return data


def _activations(handle: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    with torch.no_grad():
        parts = [layer_output(handle, layer, images[i:i + BATCH]).detach().float()
                 for i in range(0, len(images), BATCH)]
    activations = torch.cat(parts)
    if activations.dim() != 4:
        raise CnnvizError(f"layer {layer!r} outputs {tuple(activations.shape)}, not (N, C, h, w) feature maps: "
                          "concepts need a convolutional layer")
    if float(activations.min()) < 0:
        raise CnnvizError(f"layer {layer!r} has negative activations (min {float(activations.min()):.3g}): the NMF "
                          "of concepts needs non-negative ones, so pick a layer after a ReLU")
    return activations


def _importances(handle: nn.Module, images: torch.Tensor, class_index: int, layer: str, w: np.ndarray,
                 h: np.ndarray, grid: tuple[int, int]) -> list[float]:
    """Mean class-score drop when each concept's reconstruction is taken out of the layer's output."""
    module = handle.layer(layer)
    n, k = len(images), h.shape[0]
    coefficients = torch.from_numpy(w.reshape(n, grid[0], grid[1], k)).to(images.device)
    patterns = torch.from_numpy(h).to(images.device)
    removing: dict[str, Any] = {}

    def hook(mod: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not removing:
            return None
        part = coefficients[removing["rows"], :, :, removing["concept"]]  # (b, h, w)
        return output - part[:, None] * patterns[removing["concept"]][None, :, None, None].to(output.dtype)

    drops = np.zeros(k)
    with torch.no_grad(), preserve(handle), forward_hooks([(module, hook)]):
        for start in range(0, n, BATCH):
            rows = slice(start, min(start + BATCH, n))
            removing.clear()
            base = handle(images[rows])[:, class_index]
            for concept in range(k):
                removing.update(rows=rows, concept=concept)
                drops[concept] += float((base - handle(images[rows])[:, class_index]).sum())
    return (drops / n).tolist()


def _crops(maps: np.ndarray, ids: Sequence[Any], count: int) -> list[dict[str, Any]]:
    n, gh, gw = maps.shape
    peaks = maps.reshape(n, -1).max(1)
    crops = []
    for i in np.argsort(-peaks, kind="stable")[:count]:
        y, x = np.unravel_index(int(np.argmax(maps[i])), (gh, gw))
        box = [max(x - 1, 0) / gw, max(y - 1, 0) / gh, min(x + 2, gw) / gw, min(y + 2, gh) / gh]
        crops.append({"item": ids[i], "box": [round(float(v), 6) for v in box], "value": round(float(peaks[i]), 6)})
    return crops


def class_concepts(handle: nn.Module, images: torch.Tensor, class_index: int, layer: str, ids: Sequence[Any], *,
                   concepts: int = CONCEPTS, crops: int = CROPS, seed: int = 0) -> list[Concept]:
    """The concepts of one class at ``layer`` by NMF, most important first (see the module docstring).

    Args:
        handle: the model (a zoo handle or a module).
        images: ``(N, C, H, W)`` the class's images in [0, 1], on the model's device.
        class_index: the class whose score the importance is measured on.
        layer: a layer with non-negative ``(N, C, h, w)`` output (after a ReLU).
        ids: the N item ids.
        concepts: how many concepts (NMF components); fewer when the data has fewer rows or channels.
        crops: how many top images each concept names.
        seed: NMF's seed.

    Returns:
        The concepts, ranked by importance.
    """
    from sklearn.decomposition import NMF

    handle = as_handle(handle)
    if images.dim() != 4 or len(images) == 0:
        raise CnnvizError(f"concepts need a batch of images (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    if len(ids) != len(images):
        raise CnnvizError(f"{len(images)} images but {len(ids)} item ids: give one id per image")
    if concepts < 1:
        raise CnnvizError(f"concepts must be 1 or more, got {concepts}")
    activations = _activations(handle, images, layer)
    n, channels, gh, gw = activations.shape
    matrix = activations.permute(0, 2, 3, 1).reshape(-1, channels).cpu().numpy().astype(np.float64)
    k = min(concepts, channels, len(matrix))
    nmf = NMF(n_components=k, random_state=seed, **NMF_SETTINGS)
    w = nmf.fit_transform(matrix).astype(np.float32)
    h = nmf.components_.astype(np.float32)
    importance = _importances(handle, images, class_index, layer, w, h, (gh, gw))
    maps = w.reshape(n, gh, gw, k).transpose(3, 0, 1, 2)
    order = np.argsort(-np.asarray(importance), kind="stable")
    return [Concept(rank, h[i], np.ascontiguousarray(maps[i]), float(importance[i]), _crops(maps[i], ids, crops),
                    list(ids)) for rank, i in enumerate(order)]
