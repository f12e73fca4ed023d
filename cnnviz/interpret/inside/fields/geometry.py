"""The geometry tracer: a torch function mode that follows, through every operation of a forward
pass, which input pixels each position of each tensor can see (see :mod:`interpret.inside.fields.receptive_field`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary


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


def bind_args(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = dict(zip(SIGNATURES[name], args))
    bound.update(kwargs)
    return bound


def as_pair(value: Any, default: int) -> tuple[int, int]:
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return default, default
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _as_list(value: Any) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)


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
    dilation = as_pair(bound.get("dilation"), 1)
    padding = bound.get("padding", 0)
    if isinstance(padding, str):
        # 'same' pads the extra pixel after (PyTorch's rule), 'valid' pads nothing.
        padding = tuple(dilation[d] * (kernel[d] - 1) // 2 for d in range(2)) if padding == "same" else (0, 0)
    stride, pad = as_pair(bound.get("stride"), 1), as_pair(padding, 0)
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
        kernel = list(as_pair(bound["kernel_size"], 1))
        stride = list(as_pair(bound.get("stride"), 1)) if bound.get("stride") not in (None, ()) else kernel
        dilation = as_pair(bound.get("dilation"), 1) if name != "avg_pool2d" else (1, 1)
        pad = as_pair(bound.get("padding"), 0)
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
        bound = bind_args(name, args, kwargs)
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
        return _cat(lookup, bind_args(name, args, kwargs), output)
    found = [(t, g) for t in tensors_in((args, kwargs)) if (g := lookup(t)) is not None]
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
        return _conv(geo, bind_args(name, args, kwargs), output)
    if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
                "adaptive_max_pool2d"):
        return _pool(geo, name, bind_args(name, args, kwargs) if name in SIGNATURES else {}, output)
    if name == "pad":
        return _pad(geo, bind_args(name, args, kwargs), output)
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
        outputs = list(tensors_in(output))
        if name in CONSTANT or not outputs:
            return output
        if not any(t in self.geometry for t in tensors_in((args, kwargs))):
            return output  # weights, buffers, constants: no dependence on the input
        geometry = propagate(name, args, kwargs, self.geometry.get, outputs[0])
        for tensor in outputs:
            self.geometry[tensor] = geometry  # in-place ops return their input: overwrite
        return output
