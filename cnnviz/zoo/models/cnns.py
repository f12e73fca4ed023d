"""Small trainable CNNs: the classic tutorial CNN, LeNet-5 and a small ResNet.

Every activation is its own module (hooks on a shared one would fire several
times per forward pass), layers have readable dotted names
(``features.block2.conv``, ``classifier.fc1``, ``layer3.1.act2``) and weights
start from He initialization. ``build_cnn(name, ...)`` builds any of them by
name; :data:`ARCHITECTURES` drives the CLI choices.

Example:
    >>> net = build_cnn("tutorial_cnn", activation="prelu")
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.handle.handle import ModelHandle

LEAKY_SLOPE = 0.01

# name -> factory taking the channel count (PReLU learns one slope per channel).
ACTIVATIONS: dict[str, Callable[[int], nn.Module]] = {
    "relu": lambda channels: nn.ReLU(),
    "leaky_relu": lambda channels: nn.LeakyReLU(LEAKY_SLOPE),
    "prelu": lambda channels: nn.PReLU(channels),
    "elu": lambda channels: nn.ELU(),
    "gelu": lambda channels: nn.GELU(),
}

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = tuple(type(make(1)) for make in ACTIVATIONS.values())


def make_activation(name: str, channels: int) -> nn.Module:
    """A fresh activation module ``name`` for a layer with ``channels`` channels.

    Example:
        >>> make_activation("prelu", 16).weight.shape
        torch.Size([16])
    """
    if name not in ACTIVATIONS:
        raise CnnvizError(f"unknown activation {name!r}{closest(name, ACTIVATIONS)} "
                          f"(choose from {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name](channels)


def he_init(model: nn.Module, activation: str = "relu") -> nn.Module:
    """He (Kaiming) normal initialization of every conv and dense layer, in place.

    Weights get variance 2 / fan_in (scaled for the negative slope of leaky
    ReLU and PReLU), so activations keep their scale through deep ReLU stacks
    and fewer units start dead. Biases start at zero, batch norm at identity.

    Example:
        >>> layer = he_init(nn.Linear(1000, 10))
        >>> abs(float(layer.weight.detach().std()) - (2 / 1000) ** 0.5) < 0.004  # std sqrt(2 / fan_in) = 0.045
        True
    """
    slope = {"leaky_relu": LEAKY_SLOPE, "prelu": 0.25}.get(activation, 0.0)  # 0.25: PReLU's initial slope
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class ConvBlock(nn.Sequential):
    """conv -> batch norm -> dropout -> activation (repeated ``convs`` times) -> 2x2 max-pool.

    The order is the tutorial's. The conv has no bias because batch norm's
    shift does the same job. Dropout is spatial (``Dropout2d``, whole
    channels): neighbouring pixels are strongly correlated, so dropping single
    pixels regularizes little, and it draws H*W times fewer random numbers,
    which made training about twice as fast on a 2-core CPU.
    """

    def __init__(self, c_in: int, c_out: int, *, activation: str, dropout: float,
                 convs: int = 1, kernel: int = 3) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(1, convs + 1):
            suffix = str(i) if convs > 1 else ""
            layers[f"conv{suffix}"] = nn.Conv2d(c_in if i == 1 else c_out, c_out, kernel,
                                                padding=kernel // 2, bias=False)
            layers[f"bn{suffix}"] = nn.BatchNorm2d(c_out)
            layers[f"drop{suffix}"] = nn.Dropout2d(dropout)
            layers[f"act{suffix}"] = make_activation(activation, c_out)
        layers["pool"] = nn.MaxPool2d(2)
        super().__init__(layers)


class TutorialCNN(nn.Module):
    """The classic course CNN: conv blocks, then dense layers, then the output layer.

    ``features.blockN`` are :class:`ConvBlock` s (each halves the image side);
    ``classifier`` is flatten -> (dense -> batch norm -> dropout ->
    activation) per entry of ``dense`` -> ``out``.

    The defaults are the shipped ``fashion_cnn``: 16 filters suffice at 28px
    and keep the costly full-resolution block cheap (a third faster than 32
    on a 2-core CPU); the conv blocks keep their dropout module, off by
    default, because augmentation already regularizes them and in an
    18-epoch budget extra noise there cost accuracy.

    Args:
        in_channels: 1 for gray images, 3 for RGB.
        num_classes: size of the output layer.
        channels: filters of each conv block.
        dense: units of each hidden dense layer.
        activation: one of :data:`ACTIVATIONS`.
        conv_dropout, dense_dropout: dropout probabilities.
        convs_per_block: conv units before each pool (one count, or one per block).
        input_size: side of the square input (fixes the flattened size).

    Example:
        >>> net = TutorialCNN(channels=(16, 32), dense=(64,), conv_dropout=0.1)
        >>> net(torch.zeros(2, 1, 28, 28)).shape  # two images: batch norm in train mode needs more than one
        torch.Size([2, 10])
    """

    fixed_input = True  # a flatten before the dense layers

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *,
                 channels: Sequence[int] = (16, 64, 128), dense: Sequence[int] = (256,),
                 activation: str = "relu", conv_dropout: float = 0.0, dense_dropout: float = 0.2,
                 convs_per_block: int | Sequence[int] = 1, input_size: int = 28) -> None:
        super().__init__()
        if not channels:
            raise CnnvizError("the tutorial CNN needs at least one conv block: give channels")
        convs = [convs_per_block] * len(channels) if isinstance(convs_per_block, int) else list(convs_per_block)
        if len(convs) != len(channels) or min(convs) < 1:
            raise CnnvizError(f"convs_per_block needs one count >= 1 per block ({len(channels)}), "
                              f"got {convs_per_block}")
        side = input_size
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, (c_out, n_convs) in enumerate(zip(channels, convs), 1):
            blocks[f"block{i}"] = ConvBlock(c_in, c_out, activation=activation, dropout=conv_dropout,
                                            convs=n_convs)
            c_in, side = c_out, side // 2
        if side < 1:
            raise CnnvizError(f"{len(channels)} pooling blocks shrink a {input_size}px input to nothing: "
                              "use fewer blocks or a larger input")
        self.features = nn.Sequential(blocks)
        head: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width = c_in * side * side
        for i, units in enumerate(dense, 1):
            head[f"fc{i}"] = nn.Linear(width, units, bias=False)  # batch norm follows: no bias needed
            head[f"bn{i}"] = nn.BatchNorm1d(units)
            head[f"drop{i}"] = nn.Dropout(dense_dropout)
            head[f"act{i}"] = make_activation(activation, units)
            width = units
        head["out"] = nn.Linear(width, num_classes)
        self.classifier = nn.Sequential(head)
        he_init(self, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with the paper's layer names, for 28px or 32px input.

    C1 conv 5x5 (6) -> S2 pool -> C3 conv 5x5 (16) -> S4 pool -> C5 conv 5x5
    (120) -> F6 dense (84) -> output. A 28px input is padded by 2 so C5 sees
    5x5 maps as in the paper; subsampling is average pooling, as it was.

    Example:
        >>> LeNet5()(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """

    fixed_input = True  # C5 and F6 are sized for 28/32 px

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, activation: str = "relu",
                 input_size: int = 28) -> None:
        super().__init__()
        pad = max(0, (32 - input_size + 1) // 2)
        side = ((input_size + 2 * pad - 4) // 2 - 4) // 2 - 4
        if side < 1:
            raise CnnvizError(f"LeNet-5 needs inputs of at least 28px, got {input_size}")
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_channels, 6, 5, padding=pad), act1=make_activation(activation, 6),
            s2=nn.AvgPool2d(2),
            c3=nn.Conv2d(6, 16, 5), act3=make_activation(activation, 16), s4=nn.AvgPool2d(2),
            c5=nn.Conv2d(16, 120, 5), act5=make_activation(activation, 120),
        ))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), f6=nn.Linear(120 * side * side, 84), act6=make_activation(activation, 84),
            out=nn.Linear(84, num_classes),
        ))
        he_init(self, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Residual block: conv-bn-act-conv-bn, plus the shortcut, then act.

    The shortcut is the identity, or a strided 1x1 conv + batch norm when the
    shape changes, as in He et al. (2015).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = make_activation(activation, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(c_in, c_out, 1, stride, bias=False), bn=nn.BatchNorm2d(c_out)))
        self.act2 = make_activation(activation, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small ResNet for 28-32px images: stem, three stages of basic blocks, global pooling.

    Args:
        widths: channels of the three stages (the second and third halve the side).
        blocks: residual blocks per stage.

    Example:
        >>> SmallResNet(widths=(8, 16, 32))(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """

    fixed_input = False  # global pooling

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, widths: Sequence[int] = (32, 64, 128),
                 blocks: int = 2, activation: str = "relu", input_size: int = 28) -> None:
        super().__init__()
        del input_size  # global pooling accepts any size; kept for a uniform signature
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), bn=nn.BatchNorm2d(widths[0]),
            act=make_activation(activation, widths[0])))
        c_in = widths[0]
        for i, width in enumerate(widths, 1):
            stage = nn.Sequential(*[
                BasicBlock(c_in if b == 0 else width, width, 2 if (b == 0 and i > 1) else 1, activation)
                for b in range(blocks)])
            self.add_module(f"layer{i}", stage)
            c_in = width
        self.stages = len(widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        he_init(self, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, self.stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.pool(x).flatten(1))


# name -> (class, one-line summary)
ARCHITECTURES: dict[str, tuple[type[nn.Module], str]] = {
    "tutorial_cnn": (TutorialCNN, "the course CNN: conv-BN-dropout-act-pool blocks, then dense layers"),
    "lenet5": (LeNet5, "LeNet-5 (1998): C1-S2-C3-S4-C5-F6"),
    "small_resnet": (SmallResNet, "a small ResNet: stem and 3 stages of 2 basic blocks"),
}


def build_cnn(name: str, *, in_channels: int = 1, num_classes: int = 10, activation: str = "relu",
              input_size: int = 28, seed: int | None = None, **options: object) -> nn.Module:
    """Architecture ``name`` with fresh He-initialized weights.

    Args:
        name: a key of :data:`ARCHITECTURES`.
        in_channels, num_classes, activation, input_size: as the classes take them.
        seed: seeds the initialization (reproducible weights) without touching
            the global random state.
        **options: further keyword arguments of the class (e.g. ``channels``).

    Example:
        >>> build_cnn("lenet5", activation="elu").features.act1
        ELU(alpha=1.0)
    """
    if name not in ARCHITECTURES:
        raise CnnvizError(f"unknown architecture {name!r}{closest(name, ARCHITECTURES)} "
                          f"(choose from {', '.join(ARCHITECTURES)})")
    make_activation(activation, 1)  # fail early, with the one-line message, on a bad name
    cls = ARCHITECTURES[name][0]
    if seed is None:
        return cls(in_channels, num_classes, activation=activation, input_size=input_size, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(in_channels, num_classes, activation=activation, input_size=input_size, **options)


def default_layer(model: nn.Module) -> str | None:
    """The layer CAM-type methods use by default: the last activation that still has a spatial map.

    Example:
        >>> default_layer(build_cnn("tutorial_cnn"))
        'features.block3.act'
    """
    if isinstance(model, TutorialCNN):
        block_name, block = list(model.features.named_children())[-1]
        act = [n for n, _ in block.named_children() if n.startswith("act")][-1]
        return f"features.{block_name}.{act}"
    if isinstance(model, SmallResNet):
        return f"layer{model.stages}"
    if isinstance(model, LeNet5):
        return "features.act3"  # C5's output is 1x1 at 28px: no map left to localize with
    return None


@dataclass(frozen=True)
class CnnSpec:
    """Everything needed to rebuild a trained CNN: architecture, activation, shapes, options.

    Stored (as a plain dict) in checkpoints and training logs, so a shipped
    model is rebuilt exactly as it was trained.

    Example:
        >>> spec = CnnSpec("lenet5", activation="elu")
        >>> CnnSpec.from_dict(spec.as_dict()) == spec
        True
    """

    arch: str
    activation: str = "relu"
    in_channels: int = 1
    num_classes: int = 10
    input_size: int = 28
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, seed: int | None = None) -> nn.Module:
        """The network with fresh He-initialized weights."""
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in self.options.items()}
        return build_cnn(self.arch, in_channels=self.in_channels, num_classes=self.num_classes,
                         activation=self.activation, input_size=self.input_size, seed=seed, **options)

    def as_dict(self) -> dict[str, Any]:
        """A JSON- and ``weights_only``-safe dict (tuples become lists)."""
        spec = asdict(self)
        spec["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> CnnSpec:
        """The inverse of :meth:`as_dict`."""
        try:
            return cls(**spec)
        except TypeError as exc:
            raise CnnvizError(f"not a CNN description ({exc}): was the file written by cnnviz train?") from None


def cnn_handle(spec: CnnSpec, *, mean: Sequence[float], std: Sequence[float], classes: Sequence[str] | None = None,
               name: str | None = None, seed: int | None = None) -> ModelHandle:
    """A zoo handle around a fresh network built from ``spec``, normalizing with ``mean``/``std``.

    Example:
        >>> handle = cnn_handle(CnnSpec("tutorial_cnn"), mean=(0.29,), std=(0.35,))
        >>> handle.default_layer, handle.input_size
        ('features.block3.act', 28)
    """
    if len(mean) != spec.in_channels:
        raise CnnvizError(f"{len(mean)} normalization values for a {spec.in_channels}-channel model")
    model = spec.build(seed)
    return ModelHandle(model, name=name or spec.arch, input_size=spec.input_size, mean=mean, std=std,
                       classes=classes, default_layer=default_layer(model), resize_size=spec.input_size,
                       fixed_input=getattr(model, "fixed_input", False),
                       channels_last=True)
