"""The atlas across processes (gloo on CPU) equals the single-process atlas exactly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cnnviz import zoo
from cnnviz.interpret.core.distributed import Group, session, shard_batches
from cnnviz.interpret.inside.atlas.scan import neuron_atlas
from tests.conftest import REPO, TinyCNN
from tests.interpret.inside.test_atlas import photo_folder  # noqa: F401  (fixture: a folder of photos in sub-folders)
from tests.interpret.inside.test_receptive_field import one_thread  # noqa: F401  (autouse: one intra-op thread)

FIELDS = ("top_values", "top_indices", "top_positions", "bottom_values", "bottom_indices", "bottom_positions")

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def run_processes(target, args: tuple, nprocs: int, seconds: float = 120) -> None:
    """Run ``target(rank, *args)`` in ``nprocs`` processes; fail the test if they take over ``seconds``.

    fork where the platform has it: no re-import per process (a second instead of fifteen); else spawn.
    """
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    context = mp.start_processes(target, args=args, nprocs=nprocs, join=False, start_method=method)
    deadline = time.monotonic() + seconds
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the gloo processes did not finish in {seconds:.0f} s")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_setup() -> tuple[zoo.ModelHandle, torch.Tensor]:
    """The same weights and data in every process; images 2 and 9 identical and extreme, so they tie
    at the top or bottom of channels, from different shards."""
    torch.manual_seed(0)
    handle = zoo.wrap(TinyCNN(), input_size=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    images = torch.rand(22, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    images[2] = images[9] = 1.0
    return handle, images


def _rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        handle, images = tiny_setup()
        atlas = neuron_atlas(handle, "conv2", images, top=4, bottom=3, batch_size=4, progress=False)
        torch.save({name: getattr(atlas, name) for name in FIELDS}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_shards_are_whole_batches_dealt_round_robin():
    assert shard_batches(10, 3, Group(0, 2)) == [[0, 1, 2], [6, 7, 8]]
    assert shard_batches(10, 3, Group(1, 2)) == [[3, 4, 5], [9]]
    assert shard_batches(2, 3, Group(1, 2)) == []  # a rank with nothing to do still joins the merge


def test_session_without_torchrun_is_a_single_process():
    with session("cpu") as (group, device):
        assert (group.world, group.rank, device.type) == (1, 0, "cpu")
    assert not dist.is_initialized()


def test_three_gloo_processes_equal_one(tmp_path):
    handle, images = tiny_setup()
    single = neuron_atlas(handle, "conv2", images, top=4, bottom=3, batch_size=4, progress=False)
    # 22 images in batches of 4: 6 batches, so ranks get 2, 2 and 2 batches, the last one short.
    run_processes(_rank, (3, free_port(), str(tmp_path)), 3)
    for rank in range(3):
        shards = torch.load(tmp_path / f"rank{rank}.pt")
        for name in FIELDS:
            assert torch.equal(shards[name], getattr(single, name)), (rank, name)
    ties = [row.tolist() for row in (*single.top_indices, *single.bottom_indices) if 2 in row and 9 in row]
    assert ties and all(row.index(2) < row.index(9) for row in ties)  # a cross-shard tie, to the smaller index


def run_cli(args: list[str], processes: int, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
                str(processes), "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    command = (launcher if processes > 1 else [sys.executable]) + ["-m", "cnnviz.cli.main", "atlas", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_write_the_single_process_atlas(photo_folder, tmp_path):  # noqa: F811
    common = ["--layer", "blocks.2", "--data", str(photo_folder), "--top", "3", "--batch-size", "2",
              "--channels", "0-1", "--device", "cpu"]
    one = run_cli([*common, "--out", str(tmp_path / "one")], 1, tmp_path)
    two = run_cli([*common, "--out", str(tmp_path / "two")], 2, tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert "in 2 processes" in two.stdout and two.stdout.count("index.json") == 1  # rank 0 writes alone
    assert (tmp_path / "two" / "index.json").read_bytes() == (tmp_path / "one" / "index.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two" / "channels").iterdir()) == ["channel-0000.png",
                                                                                 "channel-0001.png"]

