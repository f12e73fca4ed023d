"""The explorer's atlas job (top patches of a unit page) against the neuron atlas called directly: the job
scans ``--data`` a chunk per round on the compute queue (so progress shows and a cancel stops it) and merges
the chunks exactly; this measures what the chunking costs. Both run in this process, interleaved.

Usage:
    python bench/serve_atlas.py [--model fashion_cnn] [--layer features.block2] [--data fashion-mnist]
        [--rounds 2] [--chunk 64]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch

from cnnviz import zoo
from cnnviz.explorer.atlas_job import CHUNK, AtlasJob
from cnnviz.explorer.compute_queue import ComputeQueue
from cnnviz.interpret.inside import neuron_atlas
from cnnviz.zoo.data import open_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fashion_cnn")
    parser.add_argument("--layer", default="features.block2")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=CHUNK, help="items in the first round")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    handle = zoo.load(args.model, device=args.device)
    dataset = open_dataset(args.data)
    queue = ComputeQueue(str(handle.device))
    direct, job_times = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.rounds):
            start = time.perf_counter()
            reference = neuron_atlas(handle, args.layer, dataset, top=9, bottom=0, workers=0, progress=False)
            direct.append(time.perf_counter() - start)
            job = AtlasJob(handle, args.layer, dataset, Path(folder) / f"atlas-{i}.npz", chunk=args.chunk)
            start = time.perf_counter()
            job.start(queue).result()
            job_times.append(time.perf_counter() - start)
            rounds = job.rounds
            assert job.atlas is not None and torch.equal(job.atlas.top_indices, reference.top_indices)
    queue.close()
    best_direct, best_job = min(direct), min(job_times)
    print(f"{datetime.date.today()} {handle.device} torch {torch.__version__} threads {torch.get_num_threads()}: "
          f"{args.model} {args.layer} over {len(dataset)} items ({args.data})")
    print(f"  neuron_atlas directly: {best_direct:.2f} s;  the explorer's job (first chunk {args.chunk}, then rounds of ~2 s): "
          f"{best_job:.2f} s ({best_job / best_direct:.2f}x), {rounds} rounds; "
          "same top-9 indices")


if __name__ == "__main__":
    main()
