"""The hooks the methods use: :mod:`zoo.hooks` is their one home (plain torch, so zoo can use them too).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> with record({"0": net[0]}) as rec:
    ...     _ = net(torch.rand(4, 2))
    >>> rec["0"].output.shape
    torch.Size([4, 3])
"""

from __future__ import annotations

from zoo.hooks import (ForwardHook, Recording, StopForward, forward_hooks, forward_pre_hooks, graph_from,
                       hook_counts, record, run_until)

__all__ = ["ForwardHook", "Recording", "StopForward", "forward_hooks", "forward_pre_hooks", "graph_from",
           "hook_counts", "record", "run_until"]
