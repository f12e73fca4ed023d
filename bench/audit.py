"""The audit of a data set against the model's own forward+backward pass over the same images, side by side.

The anchor is what any gradient explanation must at least cost: one forward and one backward pass (to the input)
over every image, in the audit's batches, on images already prepared on the device. The audit is timed end to
end (checking the data and hashing the model, every chunk's predictions and maps (Grad-CAM, as the issue asks,
or --method) written to the run folder, each class's clustering, embedding and concepts, the flags, audit.json, and the PNG figures), and split
by where the time goes. Both wall and process CPU seconds are reported: on a shared machine the wall clock
measures the neighbours too.

``--memory`` audits Fashion-MNIST's test set (10k) and its training set (60k) in fresh processes and reports
each one's peak resident memory: the maps live on disk, memory-mapped, so it should stay flat.

Usage:
    python bench/audit.py [--items 10000] [--device cpu] [--threads 2]
    python bench/audit.py --memory
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cnnviz import interpret, zoo
from cnnviz.cli.commands.audit import write_figures
from cnnviz.interpret.audit import concepts as concept_analysis
from cnnviz.interpret.audit import strategies as strategy_analysis
from cnnviz.zoo.core import preserve
from cnnviz.zoo.data import DATASETS, TensorImages, has_idx_files, open_dataset

REPO = Path(__file__).resolve().parents[1]


class Clock:
    """Wall and CPU seconds, summed by label."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            self.sync()
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.wall[label] += time.perf_counter() - wall
                self.cpu[label] += time.process_time() - cpu

        return run


def forward_backward(handle: zoo.ModelHandle, dataset: TensorImages, labels: torch.Tensor, batch: int,
                     clock: Clock) -> None:
    """The anchor: forward and backward to the input over every image, batches prepared on the device first."""
    batches = [(dataset.images[s:s + batch].float().div(255).to(handle.device), labels[s:s + batch].to(handle.device))
               for s in range(0, len(dataset), batch)]

    def run() -> None:
        with preserve(handle):
            for x, y in batches:
                x.requires_grad_(True)
                torch.autograd.grad(handle(x).gather(1, y[:, None]).sum(), x)

    clock.timed("forward+backward", run)()


def measure(handle: zoo.ModelHandle, data: str, items: int, workdir: Path, method: str = "gradcam") -> dict[str, Any]:
    """The anchor and the audit of the first ``items`` of ``data``, timed side by side, stage by stage; random
    images with random labels where ``data`` is not installed (a lent GPU machine may lack it)."""
    if has_idx_files(DATASETS[data].default_dir):
        dataset = open_dataset(data)
        assert isinstance(dataset, TensorImages) and dataset.labels is not None
        images, labels = dataset.images[:items], dataset.labels[:items]
        source: Any = (images, labels) if items < len(dataset) else data
    else:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (items, 1, 28, 28), generator=generator, dtype=torch.uint8)
        labels = torch.arange(items) % 10
        source, data = (images, labels), "random"
    clock = Clock(handle.device)
    forward_backward(handle, TensorImages(images), labels, interpret.audit.CHUNK, clock)  # warm-up
    clock.wall.clear()
    clock.cpu.clear()
    forward_backward(handle, TensorImages(images), labels, interpret.audit.CHUNK, clock)
    saved = strategy_analysis.class_strategies, concept_analysis.class_concepts
    strategy_analysis.class_strategies = clock.timed("strategies: clustering + embedding", saved[0])
    concept_analysis.class_concepts = clock.timed("concepts: NMF + importance", saved[1])
    try:
        run = clock.timed("open: check data, hash model", interpret.audit.AuditRun)(handle, source, workdir=workdir,
                                                                            method=method)
        run.method = dataclasses.replace(run.method, fn=clock.timed(f"maps: method ({method})", run.method.fn))
        run._predict = clock.timed("maps: predictions (forward)", run._predict)  # type: ignore[method-assign]
        run.folder.write_chunk = clock.timed("maps: write chunk", run.folder.write_chunk)  # type: ignore[method-assign]
        stages = {"maps": run._chunk, "strategies": run._strategies, "concepts": run._concepts,
                  "flags": run._finish}
        for stage, fn in stages.items():
            setattr(run, f"_{fn.__name__.lstrip('_')}", clock.timed(f"stage {stage}", fn))
        found = interpret.audit.run_to_end(run)
        clock.timed("figures", write_figures)(handle, run.data, found, workdir)
    finally:
        strategy_analysis.class_strategies, concept_analysis.class_concepts = saved
    audit_wall = sum(v for k, v in clock.wall.items() if k.startswith(("stage", "open", "figures")))
    audit_cpu = sum(v for k, v in clock.cpu.items() if k.startswith(("stage", "open", "figures")))
    return {"data": data, "items": items, "anchor_wall": clock.wall["forward+backward"],
            "anchor_cpu": clock.cpu["forward+backward"],
            "audit_wall": audit_wall, "audit_cpu": audit_cpu,
            "ratio_wall": audit_wall / clock.wall["forward+backward"],
            "ratio_cpu": audit_cpu / clock.cpu["forward+backward"],
            "parts_wall": dict(clock.wall), "parts_cpu": dict(clock.cpu), "flags": len(found.flags)}


def child(data: str, out: str) -> None:
    """One audit in this process; prints its peak resident memory (MB) as JSON."""
    handle = zoo.load("fashion_cnn", device="cpu")
    open_dataset(data)  # read once, so the baseline holds the images as the audit will
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports, model, data
    start = time.perf_counter()
    found = interpret.audit(handle, data, workdir=out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"data": data, "method": found.method, "items": found.overall["items"], "peak_mb": round(peak),
                      "before_audit_mb": round(before), "audit_adds_mb": round(peak - before),
                      "seconds": round(time.perf_counter() - start, 1)}))


def memory() -> None:
    for data in ("fashion-mnist", "fashion-mnist:train"):
        with tempfile.TemporaryDirectory() as out:
            done = subprocess.run([sys.executable, __file__, "--child", data, out], capture_output=True, text=True,
                                  cwd=REPO, check=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--method", default="gradcam", help="the method audited (default: Grad-CAM, as issue 36 asks)")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(*args.child)
        return
    if args.memory:
        memory()
        return
    handle = zoo.load("fashion_cnn", device=args.device)
    with tempfile.TemporaryDirectory() as out:
        found = measure(handle, "fashion-mnist", args.items, Path(out), args.method)
    print(f"## audit of {found['items']} {found['data']} images, fashion_cnn, {args.method}: {handle.device}, "
          f"{torch.get_num_threads()} threads, {datetime.date.today()}\n")
    print(f"forward+backward: {found['anchor_wall']:.2f} s wall, {found['anchor_cpu']:.2f} s CPU")
    print(f"audit:            {found['audit_wall']:.2f} s wall, {found['audit_cpu']:.2f} s CPU  ->  "
          f"{found['ratio_wall']:.2f}x wall, {found['ratio_cpu']:.2f}x CPU (target <= 3x)\n")
    print("| part | wall s | CPU s |\n|---|---:|---:|")
    for label in sorted(found["parts_wall"]):
        print(f"| {label} | {found['parts_wall'][label]:.2f} | {found['parts_cpu'][label]:.2f} |")


if __name__ == "__main__":
    main()
