"""Jobs dealt to gloo processes (fooling under torchrun) give what one process gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from cnnviz.interpret.core.distributed import Group, gather_jobs, shard_jobs
from tests.interpret.inside.test_atlas_distributed import free_port, run_processes

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def test_shard_jobs_deal_round_robin_and_cover_every_job():
    shares = [shard_jobs(7, Group(rank, 3)).tolist() for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shares, [])) == list(range(7))
    assert shard_jobs(2, Group(2, 3)).tolist() == []  # a rank with nothing to do still joins the gather


def _fool_rank(rank: int, world: int, port: int, out: str) -> None:
    from cnnviz import zoo
    import cnnviz.zoo  # noqa: F401  (registers fashion_cnn)
    from cnnviz.interpret.attack.fooling import fool

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        handle = zoo.load("fashion_cnn", device="cpu")
        result = fool(handle, "all", batch_size=3, progress=False)
        torch.save({"images": result.images, "confidence": result.confidence, "steps": result.steps,
                    "classes": result.classes}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_jobs_puts_each_rank_share_back_in_job_order(tmp_path):
    run_processes(_gather_rank, (3, free_port(), str(tmp_path)), nprocs=3)
    for rank in range(3):
        assert torch.load(tmp_path / f"gather{rank}.pt", weights_only=True).tolist() == [10 * j for j in range(7)]


def _gather_rank(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        group = Group(rank, world, "gloo")
        mine = shard_jobs(7, group)
        torch.save(gather_jobs(mine * 10, 7, group), Path(out) / f"gather{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_fool_the_classes_one_process_fools(tmp_path):
    from cnnviz import zoo
    import cnnviz.zoo  # noqa: F401  (registers fashion_cnn)
    from cnnviz.interpret.attack.fooling import fool

    torch.set_num_threads(1)
    single = fool(zoo.load("fashion_cnn", device="cpu"), "all", batch_size=3, progress=False)
    run_processes(_fool_rank, (2, free_port(), str(tmp_path)), nprocs=2, seconds=300)
    for rank in range(2):
        sharded = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(sharded["classes"], single.classes)
        assert torch.equal(sharded["steps"], single.steps)  # each class took the steps it takes alone
        torch.testing.assert_close(sharded["images"], single.images, atol=2 / 255, rtol=0)
        torch.testing.assert_close(sharded["confidence"], single.confidence, atol=1e-3, rtol=0)
