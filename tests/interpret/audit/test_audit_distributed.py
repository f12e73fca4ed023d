"""The audit sharded over gloo processes writes the single-process audit.json and maps, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist

from cnnviz import interpret, zoo
from tests.interpret.inside.test_atlas_distributed import free_port, run_processes

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")
SETTINGS = {"chunk": 6, "concepts": 0, "map_size": 12}


def setup() -> tuple[zoo.ModelHandle, tuple[torch.Tensor, torch.Tensor]]:
    images = torch.rand(27, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    return zoo.load("fashion_cnn", device="cpu"), (images, torch.arange(27) % 3)


def _rank(rank: int, world: int, port: int, workdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        handle, data = setup()
        found = interpret.audit(handle, data, workdir=workdir, **SETTINGS)
        assert found.overall["items"] == 27  # every rank gets the whole audit
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    handle, data = setup()
    interpret.audit(handle, data, workdir=tmp_path / "one", **SETTINGS)
    # 27 items in chunks of 6: 5 chunks, rank 0 computes 0, 2, 4 and rank 1 computes 1, 3
    run_processes(_rank, (2, free_port(), str(tmp_path / "two")), 2)
    for name in ("audit.json", "items.json"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert np.array_equal(np.load(tmp_path / "two" / "maps.npy"), np.load(tmp_path / "one" / "maps.npy"))
