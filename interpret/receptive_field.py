"""Receptive fields: which input pixels each unit of a conv or pool layer can see.

Arithmetic first: one forward pass of a blank image runs under a torch
function mode that follows the geometry of every tensor derived from the
input. Each spatial axis carries ``(size, jump, start)``: unit ``i`` of the
map sees input pixels ``start + i * jump`` to ``start + i * jump + size - 1``.
Working at the level of torch functions rather than modules is what makes it
exact for any CNN: TF-'SAME' convs (an ``F.pad`` that can be asymmetric and
depends on the input size, then a conv), residual additions written as
``out += identity`` inside a ``forward`` (the box is the union over the
paths, i.e. the largest), and concatenated branches are all seen. Boxes are
kept per run of channels, so after a concatenation each channel keeps its
own branch's box, and the layer's field is the largest of them. An operation the
arithmetic does not know (upsampling, reflection padding, a pooled map
broadcast back over a map, ...) marks everything after it as unknown rather
than guessing.

Verification by gradient probing: the input gradient of one unit must be zero
outside its box (on the real model), and the same network made positive and
linear (every conv weight ``1 / fan_in``, batch norm and activations the
identity, max pooling averaged) must have a non-zero gradient on every pixel
of the box, so the box is neither too small nor too large.

Example:
    >>> import torchvision
    >>> field = receptive_field(torchvision.models.vgg16(), "features.28", input_size=64)
    >>> field.size, field.jump
    ((196, 196), (16, 16))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary

from interpret.feature_maps import layer_output
from interpret.guard import preserve
from interpret.hooks import forward_hooks
from zoo.errors import CnnvizError
from zoo.handle import ModelHandle, as_handle
from zoo.layers import layer_name

Size = int | tuple[int, int]


class Box(NamedTuple):
    """A box of input pixels, half-open: rows ``top:bottom``, columns ``left:right``."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        """Rows in the box."""
        return self.bottom - self.top

    @property
    def width(self) -> int:
        """Columns in the box."""
        return self.right - self.left

    def clip(self, height: int, width: int) -> Box:
        """The part of the box inside an image of ``height`` x ``width``."""
        return Box(max(self.top, 0), max(self.left, 0), min(self.bottom, height), min(self.right, width))


@dataclass(frozen=True)
class ReceptiveField:
    """Where the units of one layer look, in input pixels.

    Attributes:
        layer: dotted name of the layer.
        size: ``(height, width)`` of the box each unit sees (padding included).
        jump: input pixels between neighbouring units ``(dy, dx)`` (the
            product of the strides so far).
        start: input coordinates ``(y, x)`` of the top-left pixel of unit
            ``(0, 0)``'s box; negative where the box begins in the padding.
        input_size: ``(height, width)`` of the input the arithmetic was done
            for (TF-'SAME' padding depends on it).
        output_size: ``(height, width)`` of the layer's map at that input.
        channel_runs: when channels differ (concatenated branches),
            ``(channel count, size, start)`` for consecutive channels; ``size``
            and ``start`` above are then the largest box, over all channels.

    Example:
        >>> field = ReceptiveField("conv", (3, 3), (2, 2), (-1, -1), (8, 8), (4, 4))
        >>> field.box(0, 0), field.box(0, 0, clip=False)
        (Box(top=0, left=0, bottom=2, right=2), Box(top=-1, left=-1, bottom=2, right=2))
    """

    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    channel_runs: tuple[tuple[int, tuple[int, int], tuple[int, int]], ...] = ()

    @property
    def offset(self) -> tuple[float, float]:
        """Input coordinates of the centre of unit ``(0, 0)``'s box (the classic 'offset')."""
        return (self.start[0] + (self.size[0] - 1) / 2, self.start[1] + (self.size[1] - 1) / 2)

    @property
    def same_for_all(self) -> bool:
        """Whether every channel has the same field."""
        return not self.channel_runs

    def channel(self, channel: int) -> ReceptiveField:
        """The exact field of one channel (the layer's own when all channels agree)."""
        if self.same_for_all:
            return self
        first = 0
        for count, size, start in self.channel_runs:
            if first <= channel < first + count:
                return replace(self, size=size, start=start, channel_runs=())
            first += count
        raise CnnvizError(f"channel {channel} is outside the {first} channels of {self.layer}")

    def box(self, y: int, x: int, *, channel: int | None = None, clip: bool = True) -> Box:
        """The input box of unit ``(y, x)``, clipped to the image unless ``clip=False``.

        Give ``channel`` where channels differ (:attr:`same_for_all` False);
        without it the box is the largest over the channels.
        """
        if channel is not None and not self.same_for_all:
            return self.channel(channel).box(y, x, clip=clip)
        if not (0 <= y < self.output_size[0] and 0 <= x < self.output_size[1]):
            raise CnnvizError(f"unit ({y}, {x}) is outside the {self.output_size[0]}x{self.output_size[1]} "
                              f"map of {self.layer}")
        top, left = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        box = Box(top, left, top + self.size[0], left + self.size[1])
        return box.clip(*self.input_size) if clip else box


@dataclass(frozen=True)
class LayerField:
    """One row of :func:`receptive_fields`: a module call and its field, or why there is none.

    Attributes:
        name: dotted name (``"name (call 2)"`` for a module's second call in one pass).
        type: class name of the module.
        field: the receptive field, or None when arithmetic cannot give it.
        reason: why ``field`` is None.
    """

    name: str
    type: str
    field: ReceptiveField | None
    reason: str = ""


# ---------------------------------------------------------------- geometry of tensors

class Axis(NamedTuple):
    """Geometry of one spatial axis: unit i sees ``start + i*jump`` .. ``+ size - 1``."""

    size: int
    jump: int
    start: int

    def window(self, kernel: int, stride: int, pad: int, dilation: int) -> Axis:
        """After a conv or pool window: the box grows by the dilated kernel, the jump by the stride."""
        return Axis(self.size + dilation * (kernel - 1) * self.jump, self.jump * stride, self.start - pad * self.jump)


Axes = tuple[Axis, Axis]  # (y, x)


@dataclass(frozen=True)
class Geometry:
    """Geometry of a tensor whose last two dimensions are a spatial map of ``shape``.

    ``runs`` holds ``(channel count, axes)`` for consecutive channels with
    the same box: concatenated branches give channels of different fields.
    A tensor that is not ``(B, C, H, W)`` has one run (of one "channel").
    """

    runs: tuple[tuple[int, Axes], ...]
    shape: tuple[int, int]

    @classmethod
    def uniform(cls, channels: int, axes: Axes, shape: tuple[int, int]) -> Geometry:
        """Every channel with the same box."""
        return cls(((channels, axes),), shape)

    @classmethod
    def of_channels(cls, per_channel: Sequence[Axes], shape: tuple[int, int]) -> Geometry:
        """From one box per channel, with equal neighbours merged into runs."""
        runs: list[tuple[int, Axes]] = []
        for axes in per_channel:
            if runs and runs[-1][1] == axes:
                runs[-1] = (runs[-1][0] + 1, axes)
            else:
                runs.append((1, axes))
        return cls(tuple(runs), shape)

    @property
    def channels(self) -> int:
        """Channels described."""
        return sum(count for count, _ in self.runs)

    @property
    def same_for_all(self) -> bool:
        """Whether every channel has the same box."""
        return len(self.runs) == 1

    def per_channel(self) -> list[Axes]:
        """One box per channel."""
        return [axes for count, axes in self.runs for _ in range(count)]

    def map(self, change: Callable[[Axes], Axes], shape: tuple[int, int]) -> Geometry:
        """The same spatial operation applied to every channel."""
        return Geometry(tuple((count, change(axes)) for count, axes in self.runs), shape)


@dataclass(frozen=True)
class Unknown:
    """A tensor that depends on the input in a way the arithmetic cannot follow."""

    reason: str


Geo = Geometry | Unknown

# Activations, and ops that are the identity in eval mode (batch norm uses its running
# statistics there, and tracing runs in eval mode).
ACTIVATIONS = frozenset("""
relu relu_ relu6 hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ selu selu_ celu gelu silu silu_ sigmoid
sigmoid_ tanh tanh_ hardswish hardswish_ hardsigmoid hardsigmoid_ mish softplus softsign prelu rrelu threshold
threshold_ logsigmoid
""".split())
EVAL_IDENTITY = frozenset("""batch_norm dropout dropout_ alpha_dropout feature_dropout feature_alpha_dropout
dropout1d dropout2d dropout3d""".split())
# Ops that act on each position separately (unary or broadcasting binary): the box is
# the union of the operands' boxes.
POINTWISE = ACTIVATIONS | EVAL_IDENTITY | frozenset("""
add add_ sub sub_ rsub mul mul_ div div_ true_divide neg neg_ abs abs_ pow pow_ square sqrt exp log
__add__ __iadd__ __radd__ __sub__ __isub__ __rsub__ __mul__ __imul__ __rmul__ __truediv__ __itruediv__
__rtruediv__ __neg__ __pow__ __abs__ maximum minimum clamp clamp_ clip clip_ clamp_min clamp_max where
addcmul addcdiv lerp clone contiguous to float half double bfloat16 type type_as detach detach_ requires_grad_
""".split())
# Ops that move data around; fine while the map stays the last two dims, unchanged.
RESHAPES = frozenset("""view reshape view_as reshape_as unsqueeze unsqueeze_ expand expand_as flatten squeeze
transpose permute""".split())
# Ops whose result does not depend on the values of their tensor argument.
CONSTANT = frozenset("""zeros_like ones_like empty_like full_like rand_like randn_like randint_like new_zeros
new_ones new_empty new_full new_tensor size dim numel""".split())

SIGNATURES: dict[str, tuple[str, ...]] = {
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "max_pool2d_with_indices": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                                "return_indices"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                   "divisor_override"),
    "adaptive_avg_pool2d": ("input", "output_size"),
    "adaptive_max_pool2d": ("input", "output_size", "return_indices"),
    "pad": ("input", "pad", "mode", "value"),
    "cat": ("tensors", "dim"),
    "concat": ("tensors", "dim"),
    "concatenate": ("tensors", "dim"),
    "flatten": ("input", "start_dim", "end_dim"),
    "squeeze": ("input", "dim"),
    "transpose": ("input", "dim0", "dim1"),
    "permute": ("input", "dims"),
}


def _bind(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = dict(zip(SIGNATURES[name], args))
    bound.update(kwargs)
    return bound


def _pair(value: Any, default: int) -> tuple[int, int]:
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return default, default
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _as_list(value: Any) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _spatial(tensor: torch.Tensor) -> tuple[int, int] | None:
    return (int(tensor.shape[-2]), int(tensor.shape[-1])) if tensor.dim() >= 2 else None


def _channels(tensor: torch.Tensor) -> int:
    return int(tensor.shape[1]) if tensor.dim() == 4 else 1


def union(boxes: Sequence[Axes]) -> Axes | Unknown:
    """The smallest box holding all of ``boxes`` (per axis, same jumps required)."""
    axes = []
    for d in range(2):
        jumps = {b[d].jump for b in boxes}
        if len(jumps) > 1:
            return Unknown(f"branches with different strides ({sorted(jumps)}) are combined")
        start = min(b[d].start for b in boxes)
        end = max(b[d].start + b[d].size for b in boxes)
        axes.append(Axis(end - start, jumps.pop(), start))
    return axes[0], axes[1]


def _pointwise(geos: Sequence[Geometry], output: torch.Tensor) -> Geo:
    """Operands meeting position by position (and channel by channel, broadcasting one channel)."""
    shape, channels = _spatial(output), _channels(output)
    if shape is None:
        return Unknown("an operation turned the map into a tensor without two spatial dimensions")
    if any(g.shape != shape for g in geos):
        return Unknown("a map of another size is broadcast over this one (e.g. squeeze-excite gating)")
    if all(g.same_for_all for g in geos):
        axes = union([g.runs[0][1] for g in geos])
        return axes if isinstance(axes, Unknown) else Geometry.uniform(channels, axes, shape)
    columns = []
    for g in geos:
        if g.channels == channels:
            columns.append(g.per_channel())
        elif g.same_for_all:
            columns.append([g.runs[0][1]] * channels)
        else:
            return Unknown("operands with different channel layouts are combined")
    per_channel = [union(boxes) for boxes in zip(*columns)]
    bad = next((b for b in per_channel if isinstance(b, Unknown)), None)
    return bad or Geometry.of_channels(per_channel, shape)  # type: ignore[arg-type]


def _conv(geo: Geometry, bound: dict[str, Any], output: torch.Tensor) -> Geo:
    """A conv: each output channel sees the union of its group's input channels, through the window."""
    weight = bound["weight"]
    kernel = (int(weight.shape[-2]), int(weight.shape[-1]))
    dilation = _pair(bound.get("dilation"), 1)
    padding = bound.get("padding", 0)
    if isinstance(padding, str):
        # 'same' pads the extra pixel after (PyTorch's rule), 'valid' pads nothing.
        padding = tuple(dilation[d] * (kernel[d] - 1) // 2 for d in range(2)) if padding == "same" else (0, 0)
    stride, pad = _pair(bound.get("stride"), 1), _pair(padding, 0)
    shape = _spatial(output)
    assert shape is not None

    def window(axes: Axes) -> Axes:
        return (axes[0].window(kernel[0], stride[0], pad[0], dilation[0]),
                axes[1].window(kernel[1], stride[1], pad[1], dilation[1]))

    groups, out_channels = int(bound.get("groups", 1)), int(weight.shape[0])
    if geo.same_for_all:
        return Geometry.uniform(out_channels, window(geo.runs[0][1]), shape)
    inputs = geo.per_channel()
    per_in, per_out = len(inputs) // groups, out_channels // groups
    per_channel: list[Axes] = []
    for g in range(groups):
        seen = union(inputs[g * per_in:(g + 1) * per_in])
        if isinstance(seen, Unknown):
            return seen
        per_channel += [window(seen)] * per_out
    return Geometry.of_channels(per_channel, shape)


def _pool(geo: Geometry, name: str, bound: dict[str, Any], output: torch.Tensor) -> Geo:
    shape = _spatial(output)
    assert shape is not None
    if name.startswith("adaptive"):
        kernel = []
        for d in range(2):
            n, o = geo.shape[d], shape[d]
            if n % o:
                return Unknown(f"{name} from {n} to {o} uses windows of unequal size")
            kernel.append(n // o)
        stride, pad, dilation = kernel, (0, 0), (1, 1)
    else:
        kernel = list(_pair(bound["kernel_size"], 1))
        stride = list(_pair(bound.get("stride"), 1)) if bound.get("stride") not in (None, ()) else kernel
        dilation = _pair(bound.get("dilation"), 1) if name != "avg_pool2d" else (1, 1)
        pad = _pair(bound.get("padding"), 0)
    return geo.map(lambda a: (a[0].window(kernel[0], stride[0], pad[0], dilation[0]),
                              a[1].window(kernel[1], stride[1], pad[1], dilation[1])), shape)


def _pad(geo: Geometry, bound: dict[str, Any], output: torch.Tensor) -> Geo:
    if bound.get("mode", "constant") != "constant":
        return Unknown(f"{bound['mode']} padding repeats image pixels")
    pads = list(bound["pad"]) + [0] * 4
    if any(pads[4:]):
        return Unknown("padding of the batch or channel dimensions")
    left, top = pads[0], pads[2]
    shape = _spatial(output)
    assert shape is not None
    return geo.map(lambda a: (a[0]._replace(start=a[0].start - top * a[0].jump),
                              a[1]._replace(start=a[1].start - left * a[1].jump)), shape)


def _moves_map(name: str, args: Sequence[Any], kwargs: dict[str, Any], source: torch.Tensor,
               output: torch.Tensor) -> bool:
    """Whether a reshaping op changes or reorders the last two (spatial) dimensions."""
    rank = source.dim()
    if output.dim() < 2 or output.shape[-2:] != source.shape[-2:]:
        return True
    if name in ("transpose", "permute", "flatten", "squeeze"):
        bound = _bind(name, args, kwargs)
        spatial = {rank - 2, rank - 1}
        if name == "transpose":
            dims = {bound["dim0"] % rank, bound["dim1"] % rank}
            return len(dims) == 2 and bool(dims & spatial)
        if name == "permute":
            return [d % rank for d in _as_list(bound["dims"])][-2:] != [rank - 2, rank - 1]
        if name == "flatten":
            start, end = bound.get("start_dim", 0) % rank, bound.get("end_dim", -1) % rank
            return start < end and end in spatial
        dim = bound.get("dim")
        return dim is None and any(source.shape[d] == 1 for d in spatial) or any(
            d % rank in spatial for d in _as_list(dim if dim is not None else []))
    return False  # view/reshape/unsqueeze/expand keep the trailing block when its sizes are kept


def _rearranged(geo: Geometry, source: torch.Tensor, output: torch.Tensor) -> Geo:
    """After an op that may regroup the non-spatial dimensions."""
    shape = _spatial(output)
    assert shape is not None
    if source.dim() == 4 and output.dim() == 4 and source.shape[:2] == output.shape[:2]:
        return Geometry(geo.runs, shape)
    if geo.same_for_all:
        return Geometry.uniform(_channels(output), geo.runs[0][1], shape)
    return Unknown("channels with different fields were rearranged")


def _index(geo: Geometry, source: torch.Tensor, index: Any, output: torch.Tensor) -> Geo:
    """``tensor[index]``: batch and channel selections keep the boxes of the channels chosen."""
    index = index if isinstance(index, tuple) else (index,)
    rank = source.dim()
    if Ellipsis in index or None in index or len(index) > rank or any(
            not (isinstance(i, slice) and i == slice(None)) for i in index[max(0, rank - 2):]):
        return Unknown("indexing cut into the map")
    shape = _spatial(output)
    assert shape is not None
    if rank != 4 or len(index) < 2 or index[1] == slice(None):
        return Geometry(geo.runs, shape) if output.dim() == rank else _rearranged(geo, source, output)
    channel = index[1]
    per_channel = geo.per_channel()
    if isinstance(channel, int):
        return Geometry.uniform(1, per_channel[channel], shape)
    if isinstance(channel, slice):
        return Geometry.of_channels(per_channel[channel], shape)
    return Unknown("channels were picked by a tensor index") if not geo.same_for_all else \
        Geometry.uniform(_channels(output), geo.runs[0][1], shape)


def _cat(lookup: Callable[[torch.Tensor], Geo | None], bound: dict[str, Any], output: torch.Tensor) -> Geo:
    tensors = list(bound["tensors"])
    rank = tensors[0].dim()
    dim = bound.get("dim", 0) % rank
    geos = [lookup(t) for t in tensors]
    if any(g is None for g in geos):
        return Unknown("maps that do not depend on the input were concatenated")
    bad = next((g for g in geos if isinstance(g, Unknown)), None)
    if bad:
        return bad
    if dim >= rank - 2:
        return Unknown("maps were joined along a spatial dimension")
    if rank == 4 and dim == 1:  # the channels of each operand in turn
        runs = tuple(run for g in geos for run in g.runs)  # type: ignore[union-attr]
        return Geometry.of_channels([axes for count, axes in runs for _ in range(count)], geos[0].shape)  # type: ignore[union-attr]
    return _pointwise(geos, output)  # type: ignore[arg-type]


def propagate(name: str, args: Sequence[Any], kwargs: dict[str, Any],
              lookup: Callable[[torch.Tensor], Geo | None], output: torch.Tensor) -> Geo:
    """The geometry of ``output`` of torch function ``name``; ``lookup`` gives the operands' (None:
    does not depend on the input).

    Example:
        >>> g = Geometry.uniform(1, (Axis(1, 1, 0), Axis(1, 1, 0)), (8, 8))
        >>> out = propagate("conv2d", (torch.zeros(1, 1, 8, 8), torch.zeros(2, 1, 3, 3)),
        ...                 {"stride": 2, "padding": 1}, lambda t: g if t.shape[-1] == 8 else None,
        ...                 torch.zeros(1, 2, 4, 4))
        >>> out.runs
        ((2, (Axis(size=3, jump=2, start=-1), Axis(size=3, jump=2, start=-1))),)
    """
    if name in ("cat", "concat", "concatenate"):
        return _cat(lookup, _bind(name, args, kwargs), output)
    found = [(t, g) for t in _tensors((args, kwargs)) if (g := lookup(t)) is not None]
    bad = next((g for _, g in found if isinstance(g, Unknown)), None)
    if bad:
        return bad
    geos: list[Geometry] = [g for _, g in found]  # type: ignore[misc]
    if name in POINTWISE:
        return _pointwise(geos, output)
    if _spatial(output) is None:
        return Unknown(f"{name} left no spatial map")
    source, geo = found[0]
    if name == "conv2d":
        return _conv(geo, _bind(name, args, kwargs), output)
    if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
                "adaptive_max_pool2d"):
        return _pool(geo, name, _bind(name, args, kwargs) if name in SIGNATURES else {}, output)
    if name == "pad":
        return _pad(geo, _bind(name, args, kwargs), output)
    if name == "__getitem__":
        return _index(geo, source, args[1], output)
    if name in RESHAPES:
        if _moves_map(name, args, kwargs, source, output):
            return Unknown(f"{name} moved the spatial dimensions")
        return _rearranged(geo, source, output)
    return Unknown(f"{name} is not an operation the arithmetic knows")


class GeometryTracer(TorchFunctionMode):
    """A torch function mode that follows the geometry of every tensor derived from tagged inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.geometry: WeakTensorKeyDictionary = WeakTensorKeyDictionary()

    def tag(self, tensor: torch.Tensor) -> None:
        """Mark ``tensor`` as the input: each pixel sees itself."""
        h, w = tensor.shape[-2:]
        self.geometry[tensor] = Geometry.uniform(_channels(tensor), (Axis(1, 1, 0), Axis(1, 1, 0)), (int(h), int(w)))

    def lookup(self, tensor: torch.Tensor) -> Geo:
        """The geometry of ``tensor`` (Unknown when it does not come from the input)."""
        return self.geometry.get(tensor, Unknown("it does not depend on the input"))

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        outputs = list(_tensors(output))
        if name in CONSTANT or not outputs:
            return output
        if not any(t in self.geometry for t in _tensors((args, kwargs))):
            return output  # weights, buffers, constants: no dependence on the input
        geometry = propagate(name, args, kwargs, self.geometry.get, outputs[0])
        for tensor in outputs:
            self.geometry[tensor] = geometry  # in-place ops return their input: overwrite
        return output


# ---------------------------------------------------------------- the layer table

def _input_size(handle: ModelHandle, input_size: Size | None) -> tuple[int, int]:
    size = handle.input_size if input_size is None else input_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _is_conv_or_pool(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd,
                               nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                               nn.modules.pooling._AdaptiveMaxPoolNd))


def trace_geometry(model: nn.Module, input_size: Size | None = None) -> list[tuple[str, Geo]]:
    """``(module name, output geometry)`` of every module call, in the order the calls finish,
    from one forward pass of a blank image.

    Example:
        >>> import torchvision
        >>> geos = dict(trace_geometry(torchvision.models.alexnet(), 224))
        >>> geos["features.0"].runs
        ((64, (Axis(size=11, jump=4, start=-2), Axis(size=11, jump=4, start=-2))),)
    """
    handle = as_handle(model)
    size = _input_size(handle, input_size)
    named = [(name, module) for name, module in handle.model.named_modules() if name]
    calls: list[tuple[str, Geo]] = []
    tracer = GeometryTracer()

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            first = next(_tensors(output), None)
            if first is not None:  # snapshot now: a later in-place op may change the tensor
                calls.append((name, tracer.lookup(first)))
        return hook

    image = torch.zeros(1, handle.in_channels, *size, device=handle.device)
    with preserve(handle), torch.no_grad(), forward_hooks((m, make_hook(n)) for n, m in named):
        with tracer:
            tracer.tag(image)
            handle(image)
    return calls


def _field(name: str, geo: Geo, size: tuple[int, int]) -> ReceptiveField | None:
    if not isinstance(geo, Geometry):
        return None
    largest = union([axes for _, axes in geo.runs])
    if isinstance(largest, Unknown):
        return None
    ay, ax = largest
    runs = () if geo.same_for_all else tuple(
        (count, (a[0].size, a[1].size), (a[0].start, a[1].start)) for count, a in geo.runs)
    return ReceptiveField(name, (ay.size, ax.size), (ay.jump, ax.jump), (ay.start, ax.start), size, geo.shape, runs)


def receptive_fields(model: nn.Module, *, input_size: Size | None = None,
                     every_module: bool = False) -> list[LayerField]:
    """The receptive field of every conv and pool layer (or every module), in forward order.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        input_size: side (or ``(h, w)``) of the input; default the model's.
        every_module: list every module that ran, not only conv and pool layers.

    Example:
        >>> import torchvision
        >>> rows = receptive_fields(torchvision.models.alexnet())
        >>> [(r.name, r.field.size[0], r.field.jump[0]) for r in rows if r.name == "features.10"]
        [('features.10', 163, 16)]
    """
    handle = as_handle(model)
    size = _input_size(handle, input_size)
    modules = dict(handle.model.named_modules())
    seen: Counter[str] = Counter()
    rows = []
    for name, geo in trace_geometry(handle, size):
        module = modules[name]
        seen[name] += 1
        if not (every_module or _is_conv_or_pool(module)):
            continue
        label = name if seen[name] == 1 else f"{name} (call {seen[name]})"
        reason = geo.reason if isinstance(geo, Unknown) else ""
        rows.append(LayerField(label, type(module).__name__, _field(name, geo, size), reason))
    return rows


def layer_field(model: nn.Module, layer: str | nn.Module, *,
                input_size: Size | None = None) -> tuple[ReceptiveField | None, str]:
    """``(field, "")``, or ``(None, why)`` when arithmetic cannot give ``layer``'s receptive field.

    Raises:
        CnnvizError: for an unknown layer, or one that does not run exactly
            once per forward pass.
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    name = layer_name(handle.model, module)
    size = _input_size(handle, input_size)
    geos = [geo for called, geo in trace_geometry(handle, size) if called == name]
    if not geos:
        raise CnnvizError(f"layer {name!r} did not run in the forward pass: pick another layer")
    if len(geos) > 1:
        raise CnnvizError(f"layer {name!r} runs {len(geos)} times per forward pass (a shared module), "
                          "so its receptive field is ambiguous: pick a layer that runs once")
    field = _field(name, geos[0], size)
    return field, (geos[0].reason if isinstance(geos[0], Unknown) else "")


def receptive_field(model: nn.Module, layer: str | nn.Module, *, input_size: Size | None = None) -> ReceptiveField:
    """The receptive field of ``layer``'s units, computed by arithmetic.

    Raises:
        CnnvizError: for an unknown layer, one that runs several times per
            pass, one whose output is not a map, or an operation on the way
            that the arithmetic cannot follow.

    Example:
        >>> import torchvision
        >>> field = receptive_field(torchvision.models.alexnet(), "features.10")
        >>> field.size, field.jump, field.box(0, 0)
        ((163, 163), (16, 16), Box(top=0, left=0, bottom=97, right=97))
    """
    field, reason = layer_field(model, layer, input_size=input_size)
    if field is None:
        raise CnnvizError(f"the receptive field of {layer!r} cannot be computed by arithmetic: {reason} "
                          "(probe it with interpret.unit_gradient)")
    return field


# ---------------------------------------------------------------- gradient probing

class SupportMode(TorchFunctionMode):
    """Runs a network as a positive linear one, so the input gradient of a unit is non-zero
    exactly where the unit depends on the input.

    Every conv weight becomes ``1 / fan_in`` (averaging keeps values bounded
    however deep the net), batch norm and activations become the identity
    and max pooling becomes average pooling; no weight is modified. Run it in
    float64 so the tails of a deep net's gradient do not underflow.
    """

    IDENTITY = ACTIVATIONS | EVAL_IDENTITY

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in self.IDENTITY:
            return args[0] if args else kwargs["input"]
        if name == "conv2d":
            bound = _bind(name, args, kwargs)
            weight = bound["weight"]
            average = torch.full(weight.shape, 1.0 / weight[0].numel(), dtype=torch.float64, device=weight.device)
            return F.conv2d(bound["input"].double(), average, None, bound.get("stride", 1), bound.get("padding", 0),
                            bound.get("dilation", 1), bound.get("groups", 1))
        if name in ("max_pool2d", "max_pool2d_with_indices"):
            bound = _bind(name, args, kwargs)
            if bound.get("return_indices") or name.endswith("indices"):
                raise CnnvizError("support probing cannot replace a max pool that returns indices")
            if _pair(bound.get("dilation"), 1) != (1, 1):
                raise CnnvizError("support probing cannot replace a dilated max pool")
            stride = bound.get("stride")
            return F.avg_pool2d(bound["input"], bound["kernel_size"], stride if stride not in (None, ()) else None,
                                bound.get("padding", 0), bound.get("ceil_mode", False), True)
        return func(*args, **kwargs)


def unit_gradient(model: nn.Module, layer: str | nn.Module, unit: tuple[int, int, int], *,
                  input_size: Size | None = None, support: bool = False, seed: int = 0) -> torch.Tensor:
    """``|d unit / d input|`` summed over input channels: an ``(H, W)`` map.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        layer: the layer (dotted name or module).
        unit: ``(channel, y, x)`` in the layer's output.
        input_size: side (or ``(h, w)``) of the probe image; default the model's.
        support: probe the positive linear version of the network
            (:class:`SupportMode`), whose gradient is non-zero on the whole
            dependency region; else the real network at a random image.
        seed: seeds the random probe image.

    Example:
        >>> import torchvision
        >>> grad = unit_gradient(torchvision.models.alexnet(), "features.0", (0, 5, 5), support=True)
        >>> [int(i) for i in grad.nonzero().min(0).values]
        [18, 18]
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    size = _input_size(handle, input_size)
    channel, y, x = unit
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, handle.in_channels, *size, generator=generator)
    image = image.to(handle.device, torch.float64 if support else torch.float32).requires_grad_(True)
    with preserve(handle), torch.enable_grad(), SupportMode() if support else nullcontext():
        try:
            output = layer_output(handle, module, image)
        except RuntimeError as exc:
            if not support:
                raise
            # An op SupportMode does not replace met float64 inputs with float32 weights.
            raise CnnvizError(f"support probing cannot run this network: {str(exc).splitlines()[0]}") from None
    if output.dim() != 4:
        raise CnnvizError(f"layer output has shape {tuple(output.shape)}: probing needs a (B, C, H, W) map")
    _, channels, height, width = output.shape
    if not (0 <= channel < channels and 0 <= y < height and 0 <= x < width):
        raise CnnvizError(f"unit {tuple(unit)} is outside the layer's {channels}x{height}x{width} output")
    (grad,) = torch.autograd.grad(output[0, channel, y, x], image, allow_unused=True)
    if grad is None:
        return torch.zeros(size, device=handle.device)
    return grad[0].abs().sum(0)


def nonzero_box(grad: torch.Tensor) -> Box | None:
    """The smallest box holding every non-zero pixel of a 2-D map (None if all zero)."""
    where = grad.nonzero()
    if where.numel() == 0:
        return None
    low, high = where.min(0).values, where.max(0).values
    return Box(int(low[0]), int(low[1]), int(high[0]) + 1, int(high[1]) + 1)


@dataclass(frozen=True)
class Probe:
    """The gradient check of one unit.

    Attributes:
        unit: ``(channel, y, x)``.
        box: the box from arithmetic, clipped to the image.
        gradient_box: bounding box of the real network's non-zero gradient.
        support_box: bounding box of the positive linear network's non-zero gradient.
        zero_outside: the real gradient is zero everywhere outside ``box``.
        dense_inside: the positive linear gradient is non-zero on every pixel of ``box``.
    """

    unit: tuple[int, int, int]
    box: Box
    gradient_box: Box | None
    support_box: Box | None
    zero_outside: bool
    dense_inside: bool

    @property
    def ok(self) -> bool:
        """The box is exact: nothing depends on pixels outside, everything inside counts."""
        return self.zero_outside and self.dense_inside and self.support_box == self.box


def verify_receptive_field(model: nn.Module, layer: str | nn.Module,
                           units: Sequence[tuple[int, int, int]] | None = None, *,
                           input_size: Size | None = None) -> list[Probe]:
    """Check the arithmetic box of ``units`` of ``layer`` against gradients.

    Args:
        units: ``(channel, y, x)`` triples; default the four corners and the
            centre of channel 0 (corners have boxes clipped by the padding),
            and the centre of the first channel of every run of channels
            with another field.

    Example:
        >>> import torchvision
        >>> all(p.ok for p in verify_receptive_field(torchvision.models.alexnet(), "features.3"))
        True
    """
    handle = as_handle(model)
    field = receptive_field(handle, layer, input_size=input_size)
    if units is None:
        h, w = field.output_size
        firsts = [sum(count for count, _, _ in field.channel_runs[:i]) for i in range(1, len(field.channel_runs))]
        units = list(dict.fromkeys([(0, 0, 0), (0, 0, w - 1), (0, h - 1, 0), (0, h - 1, w - 1),
                                    (0, h // 2, w // 2), *[(c, h // 2, w // 2) for c in firsts]]))
    probes = []
    for unit in units:
        box = field.box(unit[1], unit[2], channel=unit[0])
        real = unit_gradient(handle, layer, unit, input_size=field.input_size)
        dense = unit_gradient(handle, layer, unit, input_size=field.input_size, support=True)
        inside = torch.zeros_like(real, dtype=torch.bool)
        inside[box.top:box.bottom, box.left:box.right] = True
        probes.append(Probe(
            unit=tuple(unit), box=box, gradient_box=nonzero_box(real), support_box=nonzero_box(dense),
            zero_outside=bool((real[~inside] == 0).all()), dense_inside=bool((dense[inside] != 0).all()),
        ))
    return probes

