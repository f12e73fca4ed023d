"""A model handle: the network plus everything needed to feed it and read it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.layers import guess_cam_layer, resolve_layer
from cnnviz.zoo.handle.outputs import OutputSelector, select_logits

Precision = Literal["fp32", "bf16", "fp16"]
CompileMode = Literal["auto", "on", "off"]
COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class ModelHandle(nn.Module):
    """A classifier that takes images in [0, 1] and normalizes them itself.

    Methods never see normalized tensors: they work on pixels in [0, 1], so
    attacks and optimizers can clamp honestly. The wrapped network is
    ``handle.model``; layer names are relative to it. What the network needs
    (size, crop, normalization, classes, default layer) is ``handle.config``,
    a :class:`~zoo.handle.ModelConfig`; the keyword arguments below build one
    when no ``config`` is given.

    Args:
        model: the network, taking normalized ``(B, C, H, W)`` tensors.
        name: a short name for captions and file names.
        config: the model's configuration; or give its fields one by one:
        input_size, mean, std, classes, default_layer, resize_size, fixed_input: see ModelConfig.
        output: how to find the logits in what the network returns: None (a tensor, or
            ``logits`` / the first tensor of a dict, tuple, dataclass or HF ``ModelOutput``),
            a key, an attribute name, an index, or a callable (see :func:`select_logits`).
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
        >>> handle.config.resize_size
        256
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str = "model",
        config: ModelConfig | None = None,
        input_size: int = 224,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        classes: Sequence[str] | None = None,
        default_layer: str | None = None,
        resize_size: int | None = None,
        fixed_input: bool = False,
        output: OutputSelector = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if config is None:
            config = ModelConfig(input_size=input_size, resize_size=resize_size, mean=tuple(mean), std=tuple(std),
                                 classes=tuple(classes) if classes is not None else None,
                                 default_layer=default_layer, fixed_input=fixed_input)
        self.model = model
        self.name = name
        self.output = output
        self.channels_last = channels_last
        self._precision: Precision = "fp32"
        self._compile_mode: CompileMode = "auto"
        self.compiled = CompileCache()
        self.register_buffer("mean", torch.empty(0), persistent=False)
        self.register_buffer("std", torch.empty(0), persistent=False)
        self.config = config

    @property
    def config(self) -> ModelConfig:
        """The model's configuration (assign a new one, e.g. ``handle.config.replace(...)``, to change it)."""
        return self._config

    @config.setter
    def config(self, config: ModelConfig) -> None:
        if not isinstance(config, ModelConfig):
            raise CnnvizError(f"a handle's config is a zoo.ModelConfig, got {type(config).__name__}")
        if config.default_layer is not None:
            resolve_layer(self.model, config.default_layer)
        device = self.mean.device
        self._config = config
        self._classes = list(config.classes) if config.classes is not None else None
        self.mean = torch.tensor(config.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(config.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    @property
    def input_size(self) -> int:
        """Side of the square input the network was trained on."""
        return self.config.input_size

    @property
    def resize_size(self) -> int:
        """Shorter side before the centre crop."""
        return self.config.resize_size  # type: ignore[return-value]

    @property
    def classes(self) -> list[str] | None:
        """Class names, index-aligned with the logits, or None."""
        return self._classes

    @property
    def default_layer(self) -> str | None:
        """Dotted name of the layer CAM-type methods use by default."""
        return self.config.default_layer

    @property
    def in_channels(self) -> int:
        """Number of input channels the network expects."""
        return self.mean.shape[1]

    @property
    def device(self) -> torch.device:
        """The device the handle's buffers (and so its inputs) live on."""
        return self.mean.device

    @property
    def precision(self) -> Precision:
        """``fp32`` (the default), or ``bf16`` / ``fp16``: the network runs under autocast in that type.

        Opt-in only: maps move (BENCHMARKS.md measures how much per method). bf16 pays on CPUs with
        AVX-512-bf16 or AMX and on GPUs; fp16 is for GPUs only. Logits come back as float32.
        """
        return self._precision

    @precision.setter
    def precision(self, precision: Precision) -> None:
        if precision not in PRECISIONS:
            raise CnnvizError(f"unknown precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        if precision == "fp16" and self.device.type == "cpu":
            raise CnnvizError("fp16 runs on GPUs only: use --precision bf16 on the CPU")
        self._precision = precision

    @property
    def compile_mode(self) -> CompileMode:
        """``auto`` (the default), ``on`` or ``off``: whether forward-only methods (occlusion, RISE,
        Score-CAM, deletion/insertion, predict) run a ``torch.compile``-d forward. ``auto`` compiles when
        the job is long enough to repay the compile (see :mod:`zoo.handle.compiled`)."""
        return self._compile_mode

    @compile_mode.setter
    def compile_mode(self, mode: CompileMode) -> None:
        if mode not in COMPILE_MODES:
            raise CnnvizError(f"unknown compile mode {mode!r}: choose from {', '.join(COMPILE_MODES)}")
        self._compile_mode = mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` for a batch of images in [0, 1]."""
        normalized = (images - self.mean) / self.std
        if self.channels_last and normalized.device.type == "cpu" and normalized.dim() == 4:
            normalized = normalized.contiguous(memory_format=torch.channels_last)
        if self._precision == "fp32":
            return select_logits(self.model(normalized), self.output)
        with torch.autocast(normalized.device.type, dtype=PRECISIONS[self._precision]):
            logits = select_logits(self.model(normalized), self.output)
        return logits.float()

    def layer(self, layer: str | nn.Module) -> nn.Module:
        """The submodule named ``layer`` (dotted path), or ``layer`` itself."""
        if not self.config.hookable:
            raise CnnvizError(f"{self.name} is a saved program ({self.config.source}) whose layers take no hooks, "
                              "so layer methods (CAM, feature maps, inversion, DeepDream) cannot run on it; "
                              "use occlusion, gradient or another input method, or load the architecture "
                              "from Python code (file.py:FACTORY, torchvision:NAME, timm:NAME)")
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
        if image.shape[1] < 1 or image.shape[2] < 1:
            raise CnnvizError(f"the image is empty: shape {tuple(image.shape)}")
        if not image.dtype.is_floating_point:
            raise CnnvizError(f"images are floats in [0, 1], got {image.dtype}: divide by 255 (or use zoo.load_image)")
        image = match_channels(image.to(self.device, torch.float32), self.in_channels)
        size = self.input_size
        _, h, w = image.shape
        if crop:
            scale = self.resize_size / min(h, w)
            new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
            if new_h * new_w > 4 * self.resize_size ** 2:
                # A very long image: cut the centre square out first, so resizing never allocates the
                # whole stretched strip (5000 x 2 px would become 640000 x 256).
                side = min(h, w)
                top, left = (h - side) // 2, (w - side) // 2
                image = image[:, top:top + side, left:left + side]
                h = w = side
                new_h = new_w = self.resize_size
        else:
            new_h = new_w = size
        if (new_h, new_w) != (h, w):
            image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                                  antialias=True, align_corners=False)[0].clamp(0, 1)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return image[:, top:top + size, left:left + size]


class CompileCache(dict):
    """The handle's compiled forwards (see :mod:`zoo.handle.compiled`): a plain dict, so never a submodule,
    and left behind by ``copy.deepcopy`` and pickling, because a compiled function belongs to one object.
    ``job_rows``: forward-only rows the current job still expects over all its calls (see ``zoo.handle.job``)."""

    job_rows: int = 0

    def __deepcopy__(self, memo: dict) -> CompileCache:
        return CompileCache()

    def __reduce__(self) -> tuple:
        return (CompileCache, ())


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
    inputs; CAM methods default to :func:`~zoo.handle.guess_cam_layer`'s layer.
    """
    if isinstance(model, ModelHandle):
        return model
    if not isinstance(model, nn.Module):
        raise CnnvizError(f"expected a torch.nn.Module or a zoo handle, got {type(model).__name__}")
    if any(p.is_meta for p in model.parameters()):
        raise CnnvizError(f"{type(model).__name__} has its weights on the meta device (no values): "
                          "load them first, e.g. model.to_empty(device='cpu') then load_state_dict")
    channels = input_channels(model)
    handle = ModelHandle(model, name=type(model).__name__, mean=[0.0] * channels, std=[1.0] * channels,
                         default_layer=guess_cam_layer(model))
    return on_model_device(handle)


def input_channels(model: nn.Module) -> int:
    """The input channels of ``model``'s first convolution (3 when it has none)."""
    return next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)


def on_model_device(handle: ModelHandle) -> ModelHandle:
    """``handle`` with its normalization buffers on the device of its network's weights."""
    param = next(handle.model.parameters(), None)
    return handle.to(param.device) if param is not None else handle
