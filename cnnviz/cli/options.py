"""Arguments shared by several subcommands, and turning them into handles and batches."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from cnnviz import zoo
from cnnviz.cli.output import OutputFolder
from cnnviz.zoo import safe_name
from cnnviz.zoo.core import CnnvizError, option_type
from cnnviz.zoo.handle import ModelHandle
from cnnviz.zoo.core import write_json  # noqa: F401  (the one JSON writer, re-exported for commands)

DEFAULT_MODEL = "efficientnet_lite0"


MODEL_HELP = ("a zoo name (cnnviz models), torchvision:NAME, timm:NAME, path/file.py:FACTORY, a TorchScript "
              "or .pt2 file, or a cnnviz train folder (default: %(default)s; see cnnviz models --help)")


def add_model(parser: argparse.ArgumentParser, *, positional: bool = False,
              classes_flags: Sequence[str] = ("--classes", "--class-names"), repeatable: bool = False) -> None:
    """``--model`` (or a positional MODEL; with ``repeatable``, ``--model`` given once per model, a list),
    ``--weights``, the configuration overrides and ``--device``.

    ``classes_flags`` names the class-names-file option (a command whose ``--classes`` means
    something else passes ``("--class-names",)``).
    """
    if positional:
        parser.add_argument("model", metavar="MODEL", help=MODEL_HELP.replace(" (default: %(default)s;", " ("))
    elif repeatable:
        parser.add_argument("--model", "-m", action="append", metavar="MODEL",
                            help=MODEL_HELP.replace("%(default)s", DEFAULT_MODEL) + "; repeat to serve several")
    else:
        parser.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="MODEL", help=MODEL_HELP)
    group = parser.add_argument_group("your own model (see cnnviz models --help)")
    group.add_argument("--weights", metavar="PATH",
                       help="checkpoint (state dict, read with weights_only=True) to load instead of the model's "
                            "own weights; 'random' for random weights")
    group.add_argument(*classes_flags, dest="class_names", metavar="FILE",
                       help="class names: a text file with one a line, or a JSON list")
    group.add_argument("--num-classes", type=int, metavar="N",
                       help="size of the classifier (default: the model's, or what --weights implies)")
    group.add_argument("--input-size", type=int, metavar="PX", help="side of the square input the model takes")
    group.add_argument("--mean", type=_floats, metavar="M[,M...]", help="per-channel normalization mean, e.g. 0.5,0.5,0.5")
    group.add_argument("--std", type=_floats, metavar="S[,S...]", help="per-channel normalization std")
    group.add_argument("--model-args", type=_json_object, metavar="JSON",
                       help="keyword arguments for a file.py:FACTORY model, e.g. '{\"width\": 32}'")
    group.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                       help="run the network in fp32 (default), or opt in to bf16 (CPUs with AVX-512-bf16/AMX, GPUs) "
                            "or fp16 (GPUs): faster, maps move a little (BENCHMARKS.md)")
    group.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                       help="forward-only methods (occlusion, RISE, Score-CAM, deletion/insertion, predict) run a "
                            "torch.compile-d forward: auto (default) when the job is long enough to repay the "
                            "compile, measured on this machine; on, or off for plain eager PyTorch")
    group.add_argument("--output", metavar="KEY",
                       help="where the logits are in the model's output: a key, attribute or index "
                            "(default: the tensor, or logits, or the first tensor)")
    add_device(parser)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of keyword arguments, got {text!r}")
    return value


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``."""
    parser.add_argument("--device", default=None, metavar="DEV",
                        help="cpu, cuda, cuda:N or mps (default: cuda, then mps, then cpu)")


def add_images(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--image`` (repeatable, several per flag)."""
    parser.add_argument("--image", "-i", nargs="+", action="extend", required=required, metavar="I",
                        help="image file, folder of images, or scikit-image sample name "
                             f"({', '.join(zoo.sample_names()[:6])}, ...; scene1-4 are Fashion-MNIST scenes "
                             "for fashion_seg and fashion_det); repeat for a batch")


def add_out(parser: argparse.ArgumentParser, default: str = "cnnviz-out") -> None:
    """``--out``."""
    parser.add_argument("--out", "-o", default=default, metavar="DIR",
                        help=f"folder to write into (created if needed; default: {default})")


def load_handle(args: argparse.Namespace, *, weights: str | Path | None = "pretrained") -> ModelHandle:
    """The handle named by ``--model`` and the options of :func:`add_model`.

    ``weights`` is the default when ``--weights`` is not given (None: random, for shapes only).
    """
    given = getattr(args, "weights", None)
    if given is not None:
        weights = None if given == "random" else given
    output = getattr(args, "output", None)
    if isinstance(output, str) and output.lstrip("-").isdigit():
        output = int(output)
    return zoo.load(args.model, device=args.device, weights=weights, num_classes=getattr(args, "num_classes", None),
                    classes=getattr(args, "class_names", None), input_size=getattr(args, "input_size", None),
                    mean=getattr(args, "mean", None), std=getattr(args, "std", None),
                    model_args=getattr(args, "model_args", None), output=output,
                    precision=getattr(args, "precision", "fp32"), compile=getattr(args, "compile", "auto"))


def chosen_layer(args: argparse.Namespace, handle: ModelHandle) -> str:
    """``--layer``, or the model's default layer, checked against the model."""
    layer = args.layer or handle.default_layer
    if layer is None:
        raise CnnvizError(f"{handle.name} has no default layer: give --layer (see cnnviz layers {args.model})")
    handle.layer(layer)
    return layer


def load_batch(args: argparse.Namespace, handle: ModelHandle) -> tuple[list[str], torch.Tensor]:
    """Names and the prepared batch of the ``--image`` sources."""
    named = zoo.load_images(args.image, channels=handle.in_channels)
    return [name for name, _ in named], handle.prepare([image for _, image in named])


def output_dir(path: str) -> OutputFolder:
    """``--out`` as an :class:`~cli.output.OutputFolder`; a file in the way is an input error.

    The folder is not created here: the first file written creates it (every writer is atomic and makes its
    parent), so a run refused for bad input leaves nothing behind."""
    out = OutputFolder(path)
    if out.exists() and not out.is_dir():
        raise CnnvizError(f"--out {out} is a file: give a folder")
    existing = next(p for p in [out, *out.parents] if p.exists())  # the folder the first write will create under
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CnnvizError(f"--out {out} cannot be created: {existing} is not a folder you can write to")
    return out


def numbered(names: Sequence[str]) -> list[str]:
    """``names`` with a number added where two are the same (``photo-1``, ``photo-2``)."""
    counts, seen = Counter(names), Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(f"{name}-{seen[name]}" if counts[name] > 1 else name)
    return unique


def unique_stems(names: Sequence[str]) -> list[str]:
    """Safe file stems, numbered where two names would collide."""
    return numbered([safe_name(name) for name in names])


def checked(annotation: object, name: str) -> Callable[[str], object]:
    """An argparse ``type=`` from a :mod:`zoo.checks` range alias, e.g. ``type=checked(PositiveInt, "depth")``."""
    return option_type(annotation, name)
