"""``cnnviz predict``: the model's top classes for each image."""

from __future__ import annotations

import argparse

import torch

from cnnviz.cli.dense import predict_dense
from cnnviz.cli.options import add_images, add_model, add_out, checked, load_batch, load_handle, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import class_index
from cnnviz.interpret.core import auto_batch_size, chunks
from cnnviz.zoo.core import CnnvizError, PositiveInt
from cnnviz.zoo.handle import forward_runner


@command("predict", "print the top classes a model sees in images", order=20,
         description="Print the top-K classes of each image with their probabilities; for a segmentation\n"
                     "model its classes by share of pixels, for a detector its detections (numbered as\n"
                     "cnnviz explain --box takes them), each drawn into --out.\n\n"
                     "examples:\n  cnnviz predict --image chelsea\n"
                     "  cnnviz predict --image photos/ --top 3 --target 'tiger cat'")
def predict(parser: argparse.ArgumentParser) -> Run:
    add_images(parser)
    add_model(parser)
    parser.add_argument("--top", "-k", type=checked(PositiveInt, "--top"), default=5, metavar="K", help="how many classes (default: 5)")
    parser.add_argument("--target", "-t", metavar="CLASS",
                        help="also print this class's probability (index or name)")
    add_out(parser, "cnnviz-predict")  # segmentation models and detectors: where their drawn masks or boxes go

    def run(args: argparse.Namespace) -> None:
        handle = load_handle(args)
        if args.top < 1:
            raise CnnvizError(f"--top must be at least 1, got {args.top}")
        target = class_index(handle, args.target) if args.target is not None else None
        names, batch = load_batch(args, handle)
        if handle.config.task != "classification":
            predict_dense(handle, names, batch, output_dir(args.out), args.top)
            return
        size = auto_batch_size(handle)
        forward = forward_runner(handle, len(batch), size)
        with torch.no_grad():
            probs = torch.cat([forward(batch[rows]) for rows in chunks(len(batch), size, desc="predict")]).softmax(-1)
        if target is not None and target >= probs.shape[1]:
            raise CnnvizError(f"class index {target} is out of range: {handle.name} has {probs.shape[1]} classes")
        values, indices = probs.topk(min(args.top, probs.shape[1]), dim=-1)
        for name, image_probs, top_values, top_indices in zip(names, probs, values, indices):
            print(f"{name} ({handle.name})")
            for rank, (p, i) in enumerate(zip(top_values.tolist(), top_indices.tolist()), 1):
                print(f"  {rank}. {handle.class_name(i):<30} {100 * p:6.2f}%  #{i}")
            if target is not None:
                print(f"  target {handle.class_name(target)} #{target}: {100 * image_probs[target].item():.2f}%")

    return run
