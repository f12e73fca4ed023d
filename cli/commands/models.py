"""``cnnviz models`` and ``cnnviz layers``: what the zoo holds and what a model is made of."""

from __future__ import annotations

import argparse

import zoo
from cli.options import add_device
from cli.registry import Run, command
from interpret import layer_table, textbook_total
from zoo.errors import CnnvizError


@command("models", "list the models in the zoo and whether their weights are here", order=10)
def models(parser: argparse.ArgumentParser) -> Run:
    def run(args: argparse.Namespace) -> None:
        width = max(len(name) for name in zoo.names())
        for name in zoo.names():
            entry = zoo.entry(name)
            try:
                path = entry.weights_file()
                if path is None:
                    status = "untrained"
                else:
                    status = "weights here" if path.is_file() else "weights missing"
            except CnnvizError:
                status = "weights missing"
            print(f"{name:<{width}}  {status:<15}  {entry.summary}")

    return run


@command("layers", "list a model's layers: name, type, output shape, parameters", order=11,
         description="List every layer of MODEL with its output shape at the model's input size and its\n"
                     "parameter count by the textbook rules (conv: (F*F*C_in + 1)*K, dense: (in + 1)*out,\n"
                     "batch norm: 2*C), checked against the real count. Use the names with --layer.\n\n"
                     "example:\n  cnnviz layers resnet18 --depth 1")
def layers(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("model", metavar="MODEL", help="a model name (see cnnviz models)")
    parser.add_argument("--depth", type=int, default=None, metavar="N",
                        help="show layers nested at most N levels deep (default: all)")
    add_device(parser)

    def run(args: argparse.Namespace) -> int:
        handle = zoo.load(args.model, device=args.device, weights=None)  # shapes need no weights
        rows = [r for r in layer_table(handle) if args.depth is None or r.depth < args.depth]
        name_width = max(len("  " * r.depth + r.name) for r in rows)
        type_width = max(len(r.type) for r in rows)
        print(f"{'layer':<{name_width}}  {'type':<{type_width}}  {'output shape':<20}  {'params':>12}  rule")
        for r in rows:
            shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
            if r.calls > 1:
                shape += f" (x{r.calls} calls)"
            print(f"{'  ' * r.depth + r.name:<{name_width}}  {r.type:<{type_width}}  {shape:<20}  "
                  f"{r.textbook:>12,}  {r.rule}")
        real = sum(p.numel() for p in handle.model.parameters())
        textbook = textbook_total(handle.model)
        verdict = "equal" if real == textbook else "DIFFERENT"
        print(f"total: {textbook:,} parameters by the rules, {real:,} counted: {verdict}")
        return 0 if real == textbook else 1

    return run
