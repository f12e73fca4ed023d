"""torchvision's segmentation models and detectors as model sources, with their output selectors.

A segmentation model answers ``{"out": (B, K, H, W), "aux": ...}``: its handle selects ``out``, per-pixel
class scores at the input's size. A detector answers one dict per image (``boxes``, ``labels``,
``scores``, a different number each): its handle packs them into one ``(B, N, 6)`` tensor, rows
``x0, y0, x1, y1, score, label`` sorted as the detector sorted them, padded with label -1 (see
:func:`pack_detections`), so every method sees a tensor and gradients still flow to boxes and scores.

Both normalize inside (the segmenters through the handle, the detectors through their own
``GeneralizedRCNNTransform``, which also resizes), so methods see pixels in [0, 1] as for classifiers.
Nothing is downloaded: ``--weights random`` builds random weights (the backbone's too).

Example:
    >>> import torch
    >>> det = [{"boxes": torch.tensor([[1., 2., 3., 4.]]), "labels": torch.tensor([7]),
    ...         "scores": torch.tensor([0.9])}, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0),
    ...         "scores": torch.zeros(0)}]
    >>> packed = pack_detections(det)
    >>> packed
    tensor([[[ 1.0000,  2.0000,  3.0000,  4.0000,  0.9000,  7.0000]],
    <BLANKLINE>
            [[ 0.0000,  0.0000,  0.0000,  0.0000,  0.0000, -1.0000]]])
    >>> [tuple(rows.shape) for rows in unpack_detections(packed)]
    [(1, 6), (0, 6)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.guard import preserve
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import load_weights, read_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DETECTION_FIELDS = ("x0", "y0", "x1", "y1", "score", "label")


def dense_task(name: str) -> str | None:
    """``"segmentation"``, ``"detection"`` or None: what kind of torchvision model ``name`` is."""
    import torchvision

    for task, module in (("segmentation", torchvision.models.segmentation),
                         ("detection", torchvision.models.detection)):
        if name in torchvision.models.list_models(module=module):
            return task
    return None


def pack_detections(output: Any) -> torch.Tensor:
    """A detector's list of ``{"boxes", "labels", "scores"}`` dicts as one ``(B, N, 6)`` tensor.

    Rows are ``x0, y0, x1, y1, score, label``; images with fewer detections are padded with rows of
    label -1. Boxes and scores keep their autograd graph.
    """
    if isinstance(output, torch.Tensor):
        return output
    if not isinstance(output, (list, tuple)) or not all(isinstance(d, dict) and "boxes" in d for d in output):
        raise CnnvizError(f"a detector returns one dict of boxes, labels and scores per image, got "
                          f"{type(output).__name__}: pass output= to say where its detections are")
    rows = [torch.cat([d["boxes"], d["scores"][:, None], d["labels"][:, None].to(d["boxes"].dtype)], dim=1)
            for d in output]
    count = max((r.shape[0] for r in rows), default=0)
    padded = []
    for r in rows:
        pad = r.new_zeros(count - r.shape[0], 6)
        pad[:, 5] = -1
        padded.append(torch.cat([r, pad]))
    return torch.stack(padded)


def unpack_detections(packed: torch.Tensor) -> list[torch.Tensor]:
    """The inverse of :func:`pack_detections`: each image's ``(N_i, 6)`` detections, the padding (label -1)
    dropped, in the detector's order. Rows keep their device and autograd graph.

    Raises:
        CnnvizError: ``packed`` is not a ``(B, N, 6)`` tensor of detections.
    """
    if not isinstance(packed, torch.Tensor) or packed.dim() != 3 or packed.shape[-1] != 6:
        shape = tuple(packed.shape) if isinstance(packed, torch.Tensor) else type(packed).__name__
        raise CnnvizError(f"packed detections are a (B, N, 6) tensor, got {shape}")
    return [rows[rows[:, 5] >= 0] for rows in packed]


def dense_config(name: str) -> ModelConfig:
    """The configuration of torchvision's segmentation model or detector ``name`` (nothing built)."""
    import torchvision

    task = dense_task(name)
    if task is None:
        raise CnnvizError(f"torchvision has no segmentation model or detector {name!r}")
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    side = _detector_side(name) if task == "detection" else 520
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if task == "segmentation" else ((0.0,) * 3, (1.0,) * 3)
    return ModelConfig(input_size=side, resize_size=side, mean=mean, std=std, classes=tuple(meta["categories"]),
                       source=f"torchvision:{name}", task=task)


def _detector_side(name: str) -> int:
    """The shorter side the detector resizes to: 320 for the ``*320*`` models, 300 for SSD, else 800."""
    return 320 if "320" in name else 300 if name.startswith("ssd300") else 800


def dense_layer(module: nn.Module) -> str:
    """The last block of the backbone's body: a tensor-valued layer used once per forward pass."""
    backbone = module.backbone
    if hasattr(backbone, "body"):
        prefix, body = "backbone.body", backbone.body
    elif hasattr(backbone, "features"):  # SSD
        prefix, body = "backbone.features", backbone.features
    else:
        prefix, body = "backbone", backbone
    last = list(body.named_children())[-1][0]
    return f"{prefix}.{last}"


def build_dense(name: str, weights: str | Path | None, *, num_classes: int | None = None,
                model_args: dict[str, Any] | None = None) -> ModelHandle:
    """A handle of torchvision's segmentation model or detector ``name``.

    Args:
        weights: ``"pretrained"`` (torchvision's cache only), a checkpoint path, or None for random weights.
        num_classes: classes of the head (default: torchvision's, 21 VOC or 91 COCO).
        model_args: more keyword arguments for torchvision's builder (``min_size``, ``box_score_thresh``, ...).
    """
    import torchvision

    config = dense_config(name)
    entry = torchvision.models.get_model_weights(name).DEFAULT
    if weights == "pretrained":
        path = Path(torch.hub.get_dir()) / "checkpoints" / entry.url.rsplit("/", 1)[-1]
        if not path.is_file():
            raise CnnvizError(f"the weights of torchvision:{name} are not on this machine: expected {path}. "
                              f"Download {entry.url} where there is network and copy it there, or pass "
                              "--weights PATH (--weights random for random weights)")
        weights = path
    args: dict[str, Any] = {"weights_backbone": None, **(model_args or {})}
    if num_classes is not None:
        args["num_classes"] = num_classes
        config = config.replace(classes=tuple(f"class {i}" for i in range(num_classes)))
    try:
        module = torchvision.models.get_model(name, weights=None, **args)
    except TypeError as exc:
        raise CnnvizError(f"torchvision:{name} does not take these arguments {sorted(args)}: {exc}") from None
    if weights is not None:
        load_weights(module, read_checkpoint(weights), what=f"torchvision:{name}")
    config = config.replace(default_layer=dense_layer(module))
    output = pack_detections if config.task == "detection" else "out"
    return ModelHandle(module.eval(), name=name, config=config, output=output)


def detect(handle: ModelHandle, images: torch.Tensor, batch_size: int = 100) -> list[torch.Tensor]:
    """Each image's detections (``(n, 6)`` rows of :func:`zoo.models.pack_detections`, padding dropped), in
    eval mode, the model's mode left as found."""
    found = []
    with preserve(handle.model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            packed = handle(images[start:start + batch_size].to(handle.device)).cpu()
            found.extend(unpack_detections(packed))
    return found
