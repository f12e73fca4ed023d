"""Timing shared by the benchmarks: side by side, in rounds, so a shared machine's drift hits every case alike."""

from __future__ import annotations

import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer sees the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """What the numbers were measured on, for the table heading."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def interleaved(cases: dict[str, Callable[[], object]], device: torch.device, rounds: int = 3) -> dict[str, float]:
    """Fastest seconds of each case over ``rounds`` rounds.

    Every case runs once to warm up; then each round runs every case once,
    in a shuffled order (seeded, so reruns repeat it). On a machine whose speed
    drifts (other tenants, clocks), the ratio of two cases stays fair because
    both saw the same stretch of time, and no case always runs in the same slot.
    """
    for run in cases.values():
        run()
    sync(device)
    best = {name: float("inf") for name in cases}
    order = random.Random(0)
    for _ in range(rounds):
        names = list(cases)
        order.shuffle(names)
        for name in names:
            run = cases[name]
            start = time.perf_counter()
            run()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def best_of(cases: dict[str, Callable[[], object]], device: torch.device, rounds: int) -> dict[str, float]:
    """Fastest of ``rounds`` runs of each costly case, cases alternating within a round, no warm-up run each."""
    best = {name: float("inf") for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def in_fresh_process(script: str, job: str, case: str, device: str | None) -> float:
    """Run ``python SCRIPT --case JOB CASE [--device D]`` and read the seconds it prints last: the case timed
    as a new process sees it (start-up and imports excluded by the script, first-call set-up and compiles
    included)."""
    command = [sys.executable, script, "--case", job, case] + (["--device", device] if device else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])
