"""torch.distributed for sharded passes over a dataset: joining the group, sharding, exact gathers.

The same code runs as one process or under ``torchrun``: :func:`session`
joins the process group only when ``torchrun`` started the process (it sets
``WORLD_SIZE``), with NCCL on GPUs and gloo on CPUs, and leaves it in
``finally``. Shards are whole batches dealt round-robin, so every image is
computed in the same batch as in a single-process run, which is what makes
sharded results equal single-process ones bit for bit.

Example:
    >>> with session("cpu") as (group, device):
    ...     group.world, device.type
    (1, 'cpu')
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnviz.zoo.core import CnnvizError, pick_device


@dataclass(frozen=True)
class Group:
    """This process's place in the job.

    Attributes:
        rank: index of this process (0 writes the outputs).
        world: number of processes.
        backend: ``"nccl"``, ``"gloo"``, or None for a single process.
    """

    rank: int = 0
    world: int = 1
    backend: str | None = None

    @property
    def leader(self) -> bool:
        """Whether this process is rank 0."""
        return self.rank == 0


def current() -> Group:
    """The group this process belongs to now (a single process when none is initialized)."""
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))
    return Group()


@contextmanager
def session(device: str | torch.device | None = None) -> Iterator[tuple[Group, torch.device]]:
    """Join the process group when started by ``torchrun``, for the block; yields ``(group, device)``.

    Under ``torchrun`` a CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per
    process) and the backend is NCCL; on CPU it is gloo. An already
    initialized group is used as it is and left open.
    """
    device = pick_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        yield current(), device
        return
    if not dist.is_available():
        raise CnnvizError("torchrun started several processes, but this torch has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield current(), device
    finally:
        dist.destroy_process_group()


def shard_batches(total: int, batch_size: int, group: Group) -> list[list[int]]:
    """This rank's batches of ``range(total)``: batch ``b`` goes to rank ``b % world``.

    Example:
        >>> shard_batches(10, 3, Group(rank=1, world=2))
        [[3, 4, 5], [9]]
    """
    starts = range(0, total, batch_size)
    return [list(range(s, min(s + batch_size, total))) for b, s in enumerate(starts) if b % group.world == group.rank]


def _wire(tensor: torch.Tensor, group: Group) -> torch.Tensor:
    # NCCL moves CUDA tensors only; gloo moves CPU tensors.
    return tensor.contiguous() if group.backend == "nccl" else tensor.cpu().contiguous()


def gather_cat(tensor: torch.Tensor, group: Group, dim: int = 0) -> torch.Tensor:
    """Every rank's ``tensor`` (same shape on all), concatenated along ``dim`` in rank order.

    Returned on ``tensor``'s device; a single process gets ``tensor`` back.
    """
    if group.world == 1:
        return tensor
    local = _wire(tensor, group)
    parts = [torch.empty_like(local) for _ in range(group.world)]
    dist.all_gather(parts, local)
    return torch.cat(parts, dim=dim).to(tensor.device)


def shard_jobs(count: int, group: Group) -> torch.Tensor:
    """This rank's share of ``count`` independent jobs (classes to fool, say): job ``j`` goes to rank
    ``j % world``, so every rank gets a mix of easy and hard ones.

    Example:
        >>> shard_jobs(5, Group(1, 2)).tolist()
        [1, 3]
    """
    return torch.arange(group.rank, count, group.world)


def gather_jobs(part: torch.Tensor, count: int, group: Group) -> torch.Tensor:
    """The results of all ``count`` jobs in job order, from each rank's ``part`` (its :func:`shard_jobs` rows).

    Every rank gets the whole; a single process gets ``part`` back.
    """
    if group.world == 1:
        return part
    per = -(-count // group.world)
    padded = part.new_zeros((per, *part.shape[1:]))
    padded[:part.shape[0]] = part
    everything = gather_cat(padded, group)
    slot = torch.arange(group.world * per, device=part.device)
    job = (slot // per) + (slot % per) * group.world  # rank r's k-th row is job r + k * world
    valid = job < count
    out = part.new_empty((count, *part.shape[1:]))
    out[job[valid]] = everything[valid]
    return out


def agree(value: int, group: Group, what: str) -> int:
    """``value``, checked to be the same on every rank (e.g. the dataset size)."""
    if group.world == 1:
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if group.backend == "nccl" else torch.device("cpu")
    values = gather_cat(torch.tensor([value], device=device), group)
    if (values != value).any():
        raise CnnvizError(f"the processes disagree on {what} ({values.tolist()}): give every process the same input")
    return value


def barrier(group: Group) -> None:
    """Wait until every rank is here (nothing for a single process): one rank's files are then there for all."""
    if group.world > 1:
        dist.barrier()


def smallest(value: int, group: Group) -> int:
    """The smallest ``value`` over the ranks (e.g. a batch size every GPU can hold)."""
    if group.world == 1:
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if group.backend == "nccl" else torch.device("cpu")
    return int(gather_cat(torch.tensor([value], device=device), group).min())
