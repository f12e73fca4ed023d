"""``cnnviz models`` and ``cnnviz layers``: what the zoo holds and what a model is made of."""

from __future__ import annotations

import argparse

from cnnviz import zoo
from cnnviz.cli.options import add_model, checked, load_handle
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import layer_table, textbook_total
from cnnviz.zoo.core import CnnvizError, PositiveInt


@command("models", "list the models in the zoo and whether their weights are here", order=10,
         description="List the zoo's models. Every command's --model also takes your own model:\n\n"
                     "  efficientnet_lite0          a zoo name (this list)\n"
                     "  torchvision:NAME            any torchvision classifier (resnet18, convnext_tiny, vit_b_16, ...)\n"
                     "  timm:NAME                   any timm model (pip install 'cnnviz[timm]')\n"
                     "  path/model.py:FACTORY       a function or class in your file (--model-args JSON)\n"
                     "  model.pt / model.pt2        a TorchScript file (no layer hooks) / a torch.export program\n"
                     "  runs/my-run/                the output folder of cnnviz train\n\n"
                     "Weights come from --weights PATH (a state dict, read with weights_only=True; 'random'\n"
                     "for random weights) or the source's local cache; nothing is downloaded. Override the\n"
                     "configuration with --classes FILE, --num-classes, --input-size, --mean, --std, --output.\n\n"
                     "examples:\n"
                     "  cnnviz explain gradcam --model torchvision:resnet18 --weights ckpt.pt --classes classes.txt -i photo.jpg\n"
                     "  cnnviz layers timm:convnext_atto --depth 2\n"
                     "  cnnviz predict --model my_net.py:build --model-args '{\"width\": 32}' --weights w.pt -i x.png")
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
    add_model(parser, positional=True)
    parser.add_argument("--depth", type=checked(PositiveInt, "--depth"), default=None, metavar="N",
                        help="show layers nested at most N levels deep (default: all)")

    def run(args: argparse.Namespace) -> int:
        handle = load_handle(args, weights=None)  # shapes need no weights
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
