"""``preserve(model)`` for the methods: :mod:`zoo.guard` is its one home (plain torch, so zoo can use it).

Example:
    >>> from torch import nn
    >>> net = nn.Linear(2, 2).train()
    >>> with preserve(net):
    ...     net.training
    False
"""

from __future__ import annotations

from zoo.guard import preserve

__all__ = ["preserve"]
