"""A model handle: the network plus everything needed to feed it and read it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import CnnvizError
from zoo.layers import resolve_layer


class ModelHandle(nn.Module):
    """A classifier that takes images in [0, 1] and normalizes them itself.

    Methods never see normalized tensors: they work on pixels in [0, 1], so
    attacks and optimizers can clamp honestly. The wrapped network is
    ``handle.model``; layer names are relative to it.

    Args:
        model: the network, taking normalized ``(B, C, H, W)`` tensors.
        name: a short name for captions and file names.
        input_size: side of the square input the network was trained on.
        mean, std: per-channel normalization applied inside ``forward``.
        classes: class names, index-aligned with the logits.
        default_layer: dotted name of the layer CAM-type methods use.
        resize_size: shorter side before the centre crop (default: input_size / 0.875).
        channels_last: on the CPU, feed the network channels-last batches: oneDNN's
            convolutions run 1.1-1.3x faster that way (lite0, resnet18; BENCHMARKS.md).
            Only for networks that never ``.view`` an activation (the zoo's own);
            off for a module you wrap.

    Example:
        >>> import torchvision
        >>> handle = ModelHandle(torchvision.models.resnet18(), name="r18", input_size=224,
        ...                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        >>> handle(torch.rand(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str = "model",
        input_size: int = 224,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        classes: Sequence[str] | None = None,
        default_layer: str | None = None,
        resize_size: int | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise CnnvizError(f"mean has {len(mean)} values but std has {len(std)}: give one per channel")
        if any(s <= 0 for s in std):
            raise CnnvizError(f"std must be positive, got {tuple(std)}")
        self.model = model
        self.name = name
        self.input_size = int(input_size)
        self.resize_size = int(resize_size or round(input_size / 0.875))
        self.classes = list(classes) if classes is not None else None
        self.default_layer = default_layer
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @property
    def in_channels(self) -> int:
        """Number of input channels the network expects."""
        return self.mean.shape[1]

    @property
    def device(self) -> torch.device:
        """The device the handle's buffers (and so its inputs) live on."""
        return self.mean.device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images in [0, 1]."""
        normalized = (images - self.mean) / self.std
        if self.channels_last and normalized.device.type == "cpu" and normalized.dim() == 4:
            normalized = normalized.contiguous(memory_format=torch.channels_last)
        return self.model(normalized)

    def layer(self, layer: str | nn.Module) -> nn.Module:
        """The submodule named ``layer`` (dotted path), or ``layer`` itself."""
        return resolve_layer(self.model, layer)

    def class_name(self, index: int) -> str:
        """Name of class ``index``, or ``"class N"`` when the handle has none."""
        if self.classes is not None and 0 <= index < len(self.classes):
            return self.classes[index]
        return f"class {index}"

    def prepare(self, images: torch.Tensor | Sequence[torch.Tensor], *, crop: bool = True) -> torch.Tensor:
        """Resize, centre-crop and stack images into one batch on the handle's device.

        Args:
            images: ``(C, H, W)`` tensors in [0, 1] of any size, or a ready batch.
            crop: resize the shorter side then centre-crop (True), or resize
                the whole image to a square (False).

        Returns:
            A ``(B, in_channels, input_size, input_size)`` batch.
        """
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            images = list(images)
        elif isinstance(images, torch.Tensor):
            images = [images]
        if not images:
            raise CnnvizError("no images given: pass at least one image")
        return torch.stack([self._prepare_one(img, crop) for img in images])

    def _prepare_one(self, image: torch.Tensor, crop: bool) -> torch.Tensor:
        if image.dim() != 3:
            raise CnnvizError(f"expected an image of shape (C, H, W), got {tuple(image.shape)}")
        image = match_channels(image.to(self.device, torch.float32), self.in_channels)
        size = self.input_size
        _, h, w = image.shape
        if crop:
            scale = self.resize_size / min(h, w)
            new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
        else:
            new_h = new_w = size
        if (new_h, new_w) != (h, w):
            image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                                  antialias=True, align_corners=False)[0].clamp(0, 1)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return image[:, top:top + size, left:left + size]


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray to RGB by repetition, RGB to gray by luminance; else unchanged."""
    have = image.shape[0]
    if have == channels:
        return image
    if have == 1:
        return image.expand(channels, -1, -1).clone()
    if have == 3 and channels == 1:
        weights = image.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (image * weights).sum(0, keepdim=True)
    raise CnnvizError(f"the image has {have} channels but the model takes {channels}")


def as_handle(model: nn.Module) -> ModelHandle:
    """``model`` if it is a handle, else a handle with no normalization.

    Lets every method accept a plain ``nn.Module`` that already expects [0, 1]
    inputs.
    """
    if isinstance(model, ModelHandle):
        return model
    if not isinstance(model, nn.Module):
        raise CnnvizError(f"expected a torch.nn.Module or a zoo handle, got {type(model).__name__}")
    channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    handle = ModelHandle(model, name=type(model).__name__, mean=[0.0] * channels, std=[1.0] * channels)
    param = next(model.parameters(), None)
    return handle.to(param.device) if param is not None else handle


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely (``weights_only=True``), unwrapping common containers."""
    path = Path(path)
    if not path.is_file():
        raise CnnvizError(f"no weights file at {path}: check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CnnvizError(f"cannot read weights from {path}: {str(exc).splitlines()[0]}") from exc
    for key in ("state_dict", "model_state", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CnnvizError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
